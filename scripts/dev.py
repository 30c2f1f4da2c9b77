#!/usr/bin/env python3
"""Bootstrap for the README's two commands; runs with the system python3 (3.11+).

    python3 scripts/dev.py start [args...]       # risk-worker dev [args...]
    python3 scripts/dev.py test [pytest args...] # the test suite
    python3 scripts/dev.py lock                  # refresh the pins (deliberately; see below)

`start` and `test` create `.venv` at the repository root when missing and install the project
into it with `pip install -c requirements-dev.lock -e '.[dev]'`: every package comes at the
version the lock pins, so a fresh clone installs what the commit was tested with, whatever was
released since. The build tools (setuptools, mypy for mypyc) are installed first, from the lock,
and the project is built with `--no-build-isolation` against them: `setup.py` compiles the
decision core (`risk_worker/domain`) where a C compiler exists, and the script says which core
the install has (compiled, or pure Python and why). The install is skipped while
`pyproject.toml`, `setup.py`, the lock and the domain's sources are unchanged (their sha256 is
kept in `.venv/.risk-worker-installed`), so an edit of a domain module rebuilds the compiled
core before the next `start` or `test` (a stale one is never run: `risk_worker/_core.py`).

`lock` is the one deliberate way to take newer releases: it installs `.[dev]` into a throwaway
virtual environment without constraints (the newest versions pyproject.toml allows), writes
`requirements-dev.lock` (every package of that environment) and `requirements.lock` (the
container image's runtime pins, by `docker/lock_requirements.py` run in that environment).
Review the diff, run the tests, and commit both files together. Standard library only.

`test` runs pytest over `RISK_TEST_WORKERS` processes (pytest-xdist, 4 by default: most tests
wait on their servers, so on a 2-core machine 4 processes took the suite from 6m42s with 2 to
4m18s, docs/performance.md); each process starts its own servers on free ports. Arguments after
`test` come later, so `-n 0` runs it in one process and `-n 8` in eight.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".risk-worker-installed"
DEV_LOCK = ROOT / "requirements-dev.lock"
BUILD_TOOLS = ("setuptools", "mypy", "msgspec")
"""Installed from the lock before the project, which is built with them (no build isolation):
mypyc type-checks the domain, which imports msgspec."""
PYTEST_NO_TESTS_COLLECTED = 5
TEST_WORKERS = "RISK_TEST_WORKERS"
DEFAULT_TEST_WORKERS = "4"
USAGE = "usage: python3 scripts/dev.py {start|test|lock} [args...]"
DEV_LOCK_HEADER = """\
# Exact pins of every package in the development and test environment (`.[dev]`), for Linux and
# CPython 3.11+. `python3 scripts/dev.py start|test` install with `pip install -c` this file, so
# a fresh clone gets these versions whatever was released after the commit. Do not edit by hand:
# `python3 scripts/dev.py lock` rewrites it (and requirements.lock) from the newest releases
# pyproject.toml allows; review the diff, run the tests and commit both files together.
"""


def say(message: str) -> None:
    """Prints one progress line to stderr, prefixed with the script's name."""
    print(f"dev.py: {message}", file=sys.stderr, flush=True)


def ensure_venv() -> None:
    """Creates `.venv` with this interpreter's venv module unless it already has a python."""
    if PYTHON.exists():
        return
    say(f"creating virtual environment {VENV} ({sys.executable} -m venv)")
    result = subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=False)
    if result.returncode != 0:
        sys.exit(
            "dev.py: could not create .venv; on Debian/Ubuntu install the python3-venv package"
        )


def load_core() -> ModuleType:
    """``risk_worker/_core.py`` loaded by path (standard library only), for the domain's
    digest."""
    spec = importlib.util.spec_from_file_location(
        "_risk_worker_core", ROOT / "risk_worker/_core.py"
    )
    if spec is None or spec.loader is None:
        sys.exit("dev.py: cannot load risk_worker/_core.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install_digest(core: ModuleType) -> str:
    """sha256 of what an install depends on: pyproject.toml, setup.py, the lock, the core
    selector and the domain's sources (whose compiled form the install builds)."""
    parts = [ROOT / "pyproject.toml", ROOT / "setup.py", DEV_LOCK, ROOT / "risk_worker/_core.py"]
    blob = b"\0".join(path.read_bytes() for path in parts)
    return hashlib.sha256(blob + b"\0" + core.sources_digest().encode()).hexdigest()


def ensure_installed() -> None:
    """Installs the build tools, then the project editable with its dev extras, at the lock's
    versions, and says which decision core the install has.

    Skipped while :func:`install_digest` is unchanged since the last install.
    """
    core = load_core()
    digest = install_digest(core)
    if STAMP.is_file() and STAMP.read_text().strip() == digest:
        return
    say("pip install -c requirements-dev.lock -e '.[dev]' into .venv (new .venv, changed pins")
    say("or changed domain sources; compiling the decision core takes a minute or two)")
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "-c", str(DEV_LOCK)]
    for command in ([*pip, *BUILD_TOOLS], [*pip, "--no-build-isolation", "-e", ".[dev]"]):
        result = subprocess.run(command, cwd=ROOT, check=False)
        if result.returncode != 0:
            sys.exit(f"dev.py: pip install failed with exit code {result.returncode}")
    probe = "from risk_worker import _core; print(_core.compiled_problem() or 'compiled')"
    found = subprocess.run(
        [str(PYTHON), "-c", probe], cwd=ROOT, check=False, capture_output=True, text=True
    )
    lines = (found.stdout if found.returncode == 0 else found.stderr).strip().splitlines()
    problem = None if lines == ["compiled"] else (lines or ["the check printed nothing"])[-1]
    if problem is None:
        say("decision core: compiled (mypyc); RISK_DECISION_CORE=pure runs the .py modules")
    else:
        say(f"decision core: pure Python ({problem})")
    STAMP.write_text(digest + "\n")


def refresh_lock() -> int:
    """Rewrites both locks from the newest releases that pyproject.toml allows (`lock`)."""
    with tempfile.TemporaryDirectory(prefix="risk-worker-lock-") as tmp:
        venv = Path(tmp) / "venv"
        say(f"resolving '.[dev]' afresh in a throwaway virtual environment ({venv})")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", *BUILD_TOOLS], cwd=ROOT, check=True)
        subprocess.run([*pip, "--no-build-isolation", "-e", ".[dev]"], cwd=ROOT, check=True)
        # --all: setuptools too (a build tool the lock pins); pip itself is not pinned.
        freeze = [str(python), "-m", "pip", "freeze", "--all", "--exclude-editable"]
        frozen = subprocess.run(freeze, cwd=ROOT, check=True, capture_output=True, text=True)
        pins = sorted(
            (line.split("==")[0].lower().replace("_", "-").replace(".", "-"), line.split("==")[1])
            for line in frozen.stdout.splitlines()
            if "==" in line and not line.startswith(("#", "pip=="))
        )
        DEV_LOCK.write_text(DEV_LOCK_HEADER + "".join(f"{n}=={v}\n" for n, v in pins))
        say(f"wrote {DEV_LOCK.name} ({len(pins)} pins)")
        image_lock = [str(python), str(ROOT / "docker" / "lock_requirements.py")]
        subprocess.run(image_lock, cwd=ROOT, check=True)
    say("review `git diff`, run `python3 scripts/dev.py test`, and commit both locks together")
    return 0


def main(argv: list[str]) -> int:
    """Runs `start` (execs `risk-worker dev`), `test` (pytest) or `lock`; returns the exit code."""
    if sys.version_info < (3, 11):  # noqa: UP036 (system python3 may be older than ours)
        sys.exit(f"dev.py: Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    if not argv or argv[0] not in {"start", "test", "lock"}:
        print(USAGE, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command == "lock":
        return refresh_lock()
    ensure_venv()
    ensure_installed()
    if command == "start":
        executable = str(BIN / "risk-worker")
        os.execv(executable, [executable, "dev", *args])
    workers = os.environ.get(TEST_WORKERS, DEFAULT_TEST_WORKERS)
    if not workers.isdigit():
        sys.exit(f"dev.py: {TEST_WORKERS} must be a whole number of processes, got {workers!r}")
    pytest = [str(PYTHON), "-m", "pytest", "-n", workers, *args]
    code = subprocess.run(pytest, cwd=ROOT, check=False).returncode
    if code == PYTEST_NO_TESTS_COLLECTED:
        say("pytest collected no tests: treating that as a failure")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
