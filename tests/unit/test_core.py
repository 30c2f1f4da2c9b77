"""The compiled decision core: what is compiled, which core runs, and that both decide alike.

The cores cannot share a process (the choice is made before the domain is imported), so these
tests run subprocesses with ``RISK_DECISION_CORE`` set. A test that needs the compiled core
fails when a C compiler exists but the core is not built, or is stale (rebuild with
``python3 scripts/dev.py test``, which does it), and is skipped only without a C compiler.
"""

from __future__ import annotations

import enum
import importlib
import importlib.machinery
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import msgspec
import pytest

from risk_worker import _core
from risk_worker.errors import ConfigError
from risk_worker.service.settings import _check_core, load_settings

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENCE = ROOT / "tests" / "core_equivalence.py"
SEEDS = (1, 2, 3)
CASES = 80


def c_compiler_works(tmp_path: Path) -> bool:
    """Whether the C compiler Python builds extensions with compiles an empty file."""
    command = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if not command or shutil.which(command[0]) is None:
        return False
    source = tmp_path / "probe.c"
    source.write_text("int probe(void) { return 0; }\n")
    done = subprocess.run(
        [*command, "-c", str(source), "-o", str(tmp_path / "probe.o")],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture
def compiled(tmp_path: Path) -> None:
    """Requires a current compiled core: fails when a C compiler exists, else skips."""
    problem = _core.compiled_problem()
    if problem is None:
        return
    if c_compiler_works(tmp_path):
        pytest.fail(f"a C compiler exists but {problem}; run python3 scripts/dev.py test")
    pytest.skip(f"no C compiler here, so no compiled core: {problem}")


def run(code_or_args: list[str], core: str, cwd: Path = ROOT, **env: str) -> str:
    """Runs python in ``cwd`` with ``RISK_DECISION_CORE=core`` (a fixed hash seed, so that
    both cores iterate sets alike); returns stdout."""
    environ = {**os.environ, _core.SETTING: core, "PYTHONHASHSEED": "0", **env}
    done = subprocess.run(
        [sys.executable, *code_or_args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return done.stdout.decode()


LOADED = """
import importlib, json
from risk_worker import _core
names = sorted(p.stem for p in _core.DOMAIN_DIR.glob("*.py") if p.stem != "__init__")
files = {n: importlib.import_module("risk_worker.domain." + n).__file__ for n in names}
print(json.dumps({"status": _core.STATUS._asdict(), "files": files}))
"""


def test_compiled_modules_when_inspected_then_none_defines_a_struct_or_an_enum() -> None:
    for name in _core.compiled_names():
        module = importlib.import_module(f"risk_worker.domain.{name}")
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                assert not issubclass(value, msgspec.Struct | enum.Enum), (
                    f"{module.__name__}.{value.__name__}: a Struct or an enum in a compiled "
                    "module; define it in a module of _core.INTERPRETED"
                )


def test_interpreted_modules_when_listed_then_each_exists() -> None:
    sources = {p.stem for p in _core.DOMAIN_DIR.glob("*.py")}
    assert sources >= _core.INTERPRETED
    assert set(_core.compiled_names()) == sources - _core.INTERPRETED


def test_pure_core_when_selected_then_every_domain_module_is_its_source() -> None:
    loaded = json.loads(run(["-c", LOADED], "pure"))
    assert loaded["status"]["active"] == "pure"
    assert loaded["status"]["reason"] == "RISK_DECISION_CORE=pure"
    wrong = {n: f for n, f in loaded["files"].items() if not f.endswith(f"{n}.py")}
    assert wrong == {}


@pytest.mark.usefixtures("compiled")
@pytest.mark.parametrize("core", ["compiled", "auto"])
def test_compiled_core_when_selected_then_compiled_modules_are_extensions(core: str) -> None:
    loaded = json.loads(run(["-c", LOADED], core))
    assert loaded["status"]["active"] == "compiled"
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for name, file in loaded["files"].items():
        if name in _core.INTERPRETED:
            assert file.endswith(f"{name}.py"), file
        else:
            assert file.endswith(suffixes) and Path(file).name.startswith(name + "."), file


@pytest.mark.usefixtures("compiled")
@pytest.mark.parametrize("seed", SEEDS)
def test_cores_when_random_books_policies_and_orders_then_identical_outcomes(seed: int) -> None:
    args = [str(EQUIVALENCE), str(seed), str(CASES)]
    compiled_out = run(args, "compiled").splitlines()
    pure_out = run(args, "pure").splitlines()
    assert compiled_out[0] == "core compiled"
    assert pure_out[0] == "core pure"
    assert len(compiled_out) == len(pure_out)
    assert len(pure_out) > CASES * 25  # every order of every case answered
    for got, want in zip(compiled_out[1:], pure_out[1:], strict=True):
        assert got == want, f"compiled:\n{got[:2000]}\npure:\n{want[:2000]}"


def test_pure_core_when_string_hash_seeds_differ_then_identical_outcomes() -> None:
    """Two instances (each its own hash seed) compute the same figures to the bit: no set of
    strings is iterated into a sum (a strategy's symbols once were)."""
    args = [str(EQUIVALENCE), str(SEEDS[0]), str(CASES)]
    first = run(args, "pure", PYTHONHASHSEED="1").splitlines()
    second = run(args, "pure", PYTHONHASHSEED="2").splitlines()
    assert len(first) > CASES * 25
    for got, want in zip(first, second, strict=True):
        assert got == want, f"hash seed 1:\n{got[:2000]}\nhash seed 2:\n{want[:2000]}"


@pytest.mark.usefixtures("compiled")
def test_compiled_core_when_a_domain_source_changed_then_pure_runs_and_compiled_refuses(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "risk_worker"
    shutil.copytree(ROOT / "risk_worker", copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "domain" / "metrics.py").open("a") as source:
        source.write("\n# edited after the build\n")
    env = {"PYTHONPATH": str(tmp_path)}
    loaded = json.loads(run(["-c", LOADED], "auto", tmp_path, **env))
    assert loaded["files"]["metrics"] == str(copy / "domain" / "metrics.py")
    assert loaded["status"]["active"] == "pure"
    assert "stale" in loaded["status"]["reason"]
    assert all(f.endswith(".py") for f in loaded["files"].values())
    refused = "from risk_worker.service.settings import load_settings; load_settings()"
    done = subprocess.run(
        [sys.executable, "-c", refused],
        env={**os.environ, **env, _core.SETTING: "compiled"},
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert done.returncode != 0
    assert b"RISK_DECISION_CORE" in done.stderr
    assert b"stale" in done.stderr


@pytest.mark.usefixtures("compiled")
def test_compiled_core_when_its_extension_does_not_load_then_pure_runs(tmp_path: Path) -> None:
    copy = tmp_path / "risk_worker"
    shutil.copytree(ROOT / "risk_worker", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (group,) = (copy / "domain").glob("_core__mypyc.*")
    group.write_bytes(b"not a shared library")
    loaded = json.loads(run(["-c", LOADED], "auto", tmp_path, PYTHONPATH=str(tmp_path)))
    assert loaded["status"]["active"] == "pure"
    assert "does not load" in loaded["status"]["reason"]
    assert all(f.endswith(".py") and f.startswith(str(copy)) for f in loaded["files"].values())


def test_compiled_problem_when_no_stamp_or_other_sources_then_says_why(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    assert "no compiled core is built" in str(_core.compiled_problem(tmp_path))
    (tmp_path / _core.NOT_BUILT).write_text("no working C compiler at install (...)\n")
    assert str(_core.compiled_problem(tmp_path)).endswith("no working C compiler at install (...)")
    stamp = {"sources_sha256": "0" * 64, "modules": ["a"], "compiler": "mypyc"}
    (tmp_path / _core.STAMP).write_text(json.dumps(stamp))
    assert "stale" in str(_core.compiled_problem(tmp_path))
    stamp["sources_sha256"] = _core.sources_digest(tmp_path)
    (tmp_path / _core.STAMP).write_text(json.dumps(stamp))
    assert "no extension for a" in str(_core.compiled_problem(tmp_path))
    (tmp_path / _core.STAMP).write_text("{")
    assert "unreadable" in str(_core.compiled_problem(tmp_path))


def test_sources_digest_when_a_source_changes_then_differs(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    before = _core.sources_digest(tmp_path)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert _core.sources_digest(tmp_path) != before


def test_select_when_pure_or_unknown_then_as_documented(tmp_path: Path) -> None:
    pure = _core.select({_core.SETTING: " PURE "}, tmp_path)
    assert (pure.requested, pure.active) == ("pure", "pure")
    unknown = _core.select({_core.SETTING: "fast"}, tmp_path)  # the settings refuse it
    assert (unknown.active, unknown.available) == ("pure", False)
    assert "no compiled core" in unknown.reason


@pytest.mark.parametrize(
    ("requested", "status", "message"),
    [
        ("compiled", _core.CoreStatus("auto", "pure", False, "no compiled core is built"), "built"),
        ("compiled", _core.CoreStatus("pure", "pure", False, "pure"), "pure core is already"),
        ("pure", _core.CoreStatus("auto", "compiled", True, "current"), "already loaded"),
    ],
)
def test_check_core_when_the_running_core_is_not_the_requested_one_then_refuses(
    requested: str, status: _core.CoreStatus, message: str
) -> None:
    with pytest.raises(ConfigError, match="RISK_DECISION_CORE") as raised:
        _check_core(requested, status)
    assert message in str(raised.value)


@pytest.mark.parametrize("requested", ["auto", "compiled", "pure"])
def test_check_core_when_the_running_core_is_the_requested_one_then_accepts(
    requested: str,
) -> None:
    active = "pure" if requested == "pure" else "compiled"
    _check_core(requested, _core.CoreStatus(requested, active, active == "compiled", "ok"))
    _check_core("auto", _core.CoreStatus(requested, "pure", False, "ok"))


def test_settings_when_decision_core_unknown_then_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="RISK_DECISION_CORE"):
        load_settings({_core.SETTING: "fast"})
    assert load_settings({_core.SETTING: " AUTO "}).decision_core == "auto"


def test_dev_script_when_domain_sources_change_then_its_install_stamp_changes() -> None:
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None and spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)

    class Core:
        def __init__(self, digest: str) -> None:
            self.digest = digest

        def sources_digest(self) -> str:
            return self.digest

    assert dev.install_digest(Core("a")) != dev.install_digest(Core("b"))  # rebuilds the core
    assert dev.install_digest(Core("a")) == dev.install_digest(Core("a"))
    assert {"setuptools", "mypy", "msgspec"} <= set(dev.BUILD_TOOLS)  # mypyc needs all three
