"""The official AsyncAPI parser (npm ``@asyncapi/parser``) accepts docs/contract/asyncapi.yaml
with no error-severity diagnostic, and Ajv (a complete JSON Schema 2020-12 validator) accepts
every message example against its schema file.

The packages are installed once, at pinned versions, into a cache outside the repository
(``~/.cache/risk-worker/``, or ``$XDG_CACHE_HOME``): the first run takes about a minute, later
ones a few seconds. Skipped only when node or npm is not on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "docs" / "contract"
SCRIPT = REPO / "tests" / "asyncapi_check.cjs"
PACKAGES = ("@asyncapi/parser@3.6.6", "ajv@8.20.0")
"""Pinned exact versions (change them here to upgrade; the cache directory follows)."""

pytestmark = pytest.mark.slow


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "risk-worker"


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not on PATH: the AsyncAPI parser check needs them")
    return node, npm


def _installed(npm: str) -> Path:
    """node_modules holding :data:`PACKAGES`, installed on first use (atomically: a run
    killed halfway leaves no half-installed cache)."""
    name = "node-" + "-".join(p.lstrip("@").replace("/", "-").replace("@", "-") for p in PACKAGES)
    target = _cache_root() / name
    if (target / "node_modules" / "@asyncapi" / "parser" / "package.json").is_file():
        return target / "node_modules"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f"{name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    done = subprocess.run(
        [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund",
         "--loglevel=error", *PACKAGES],
        check=False, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert done.returncode == 0, f"npm install {' '.join(PACKAGES)} failed:\n{done.stderr}"
    try:
        staging.rename(target)
    except OSError:  # another run installed it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return target / "node_modules"


def _check(*directories: Path) -> dict[Path, str]:
    """Each directory's output of the check (its last line ``result <dir> ok|failed``)."""
    node, npm = _tools()
    modules = _installed(npm)
    done = subprocess.run(
        [node, str(SCRIPT), *map(str, directories)],
        env={**os.environ, "NODE_PATH": str(modules)},
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.stderr == "", done.stderr
    outputs, lines = {}, []
    for line in done.stdout.splitlines():
        lines.append(line)
        if line.startswith("result "):
            outputs[Path(line.split(" ")[1])] = "\n".join(lines)
            lines = []
    assert set(outputs) == set(directories), done.stdout
    assert done.returncode == int(any(o.endswith(" failed") for o in outputs.values()))
    return outputs


BROKEN = {
    "not_a_channel_field": (
        "    address: risk.alerts.critical\n",
        "    address: risk.alerts.critical\n    queue: risk-workers\n",
        "severity=0",
    ),
    "example_refused": (
        "processing_time_us: 95\n",
        'processing_time_us: "95"\n',
        "example of CheckReplyMsg: data/processing_time_us must be integer",
    ),
}
"""A broken copy of the document: the parser's error, and an example its schema refuses."""


def test_asyncapi_parser_when_given_the_contract_then_no_error_and_broken_copies_fail(
    tmp_path: Path,
) -> None:
    broken: dict[str, Path] = {}
    for name, (old, new, _) in BROKEN.items():
        shutil.copytree(CONTRACT, tmp_path / name)
        document = tmp_path / name / "asyncapi.yaml"
        text = document.read_text(encoding="utf-8")
        assert text.count(old) == 1, name
        document.write_text(text.replace(old, new), encoding="utf-8")
        broken[name] = tmp_path / name
    outputs = _check(CONTRACT, *broken.values())
    good = outputs[CONTRACT]
    assert good.endswith(" ok"), good
    assert "checked 21 messages, 19 examples" in good, good
    for name, directory in broken.items():
        assert outputs[directory].endswith(" failed"), outputs[directory]
        assert BROKEN[name][2] in outputs[directory], outputs[directory]
