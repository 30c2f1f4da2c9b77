#!/usr/bin/env python3
"""Bootstrap for the README's two commands; runs with the system python3 (3.11+).

    python3 scripts/dev.py start [args...]       # risk-worker dev [args...]
    python3 scripts/dev.py test [pytest args...] # the test suite

Both create `.venv` at the repository root when missing and install the project into it with
`pip install -e '.[dev]'`, skipping the install while `pyproject.toml` is unchanged (its sha256 is
kept in `.venv/.risk-worker-installed`). Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".risk-worker-installed"
PYTEST_NO_TESTS_COLLECTED = 5
USAGE = "usage: python3 scripts/dev.py {start|test} [args...]"


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


def ensure_installed() -> None:
    """Installs the project editable with its dev extras unless pyproject.toml is unchanged."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.is_file() and STAMP.read_text().strip() == digest:
        return
    say("pip install -e '.[dev]' into .venv (new .venv or changed pyproject.toml)")
    command = [str(PYTHON), "-m", "pip", "install", "--quiet", "-e", ".[dev]"]
    result = subprocess.run(command, cwd=ROOT, check=False)
    if result.returncode != 0:
        sys.exit(f"dev.py: pip install failed with exit code {result.returncode}")
    STAMP.write_text(digest + "\n")


def main(argv: list[str]) -> int:
    """Runs `start` (execs `risk-worker dev`) or `test` (pytest); returns the exit code."""
    if sys.version_info < (3, 11):  # noqa: UP036 (system python3 may be older than ours)
        sys.exit(f"dev.py: Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    if not argv or argv[0] not in {"start", "test"}:
        print(USAGE, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    ensure_venv()
    ensure_installed()
    if command == "start":
        executable = str(BIN / "risk-worker")
        os.execv(executable, [executable, "dev", *args])
    code = subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT, check=False).returncode
    if code == PYTEST_NO_TESTS_COLLECTED:
        say("pytest collected no tests: treating that as a failure")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
