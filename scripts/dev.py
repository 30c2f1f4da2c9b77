#!/usr/bin/env python3
"""Bootstrap for the README's two commands; runs with the system python3 (3.11+).

    python3 scripts/dev.py start [args...]       # risk-worker dev [args...]
    python3 scripts/dev.py test [pytest args...] # the test suite
    python3 scripts/dev.py lock                  # refresh the pins (deliberately; see below)

`start` and `test` create `.venv` at the repository root when missing and install the project
into it with `pip install -c requirements-dev.lock -e '.[dev]'`: every package comes at the
version the lock pins, so a fresh clone installs what the commit was tested with, whatever was
released since. The install is skipped while `pyproject.toml` and the lock are unchanged (their
sha256 is kept in `.venv/.risk-worker-installed`).

`lock` is the one deliberate way to take newer releases: it installs `.[dev]` into a throwaway
virtual environment without constraints (the newest versions pyproject.toml allows), writes
`requirements-dev.lock` (every package of that environment) and `requirements.lock` (the
container image's runtime pins, by `docker/lock_requirements.py` run in that environment).
Review the diff, run the tests, and commit both files together. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".risk-worker-installed"
DEV_LOCK = ROOT / "requirements-dev.lock"
PYTEST_NO_TESTS_COLLECTED = 5
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


def ensure_installed() -> None:
    """Installs the project editable with its dev extras, at the lock's versions.

    Skipped while pyproject.toml and requirements-dev.lock are unchanged since the last install.
    """
    digest = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + b"\0" + DEV_LOCK.read_bytes()
    ).hexdigest()
    if STAMP.is_file() and STAMP.read_text().strip() == digest:
        return
    say("pip install -c requirements-dev.lock -e '.[dev]' into .venv (new .venv or changed pins)")
    command = [str(PYTHON), "-m", "pip", "install", "--quiet"]
    command += ["-c", str(DEV_LOCK), "-e", ".[dev]"]
    result = subprocess.run(command, cwd=ROOT, check=False)
    if result.returncode != 0:
        sys.exit(f"dev.py: pip install failed with exit code {result.returncode}")
    STAMP.write_text(digest + "\n")


def refresh_lock() -> int:
    """Rewrites both locks from the newest releases that pyproject.toml allows (`lock`)."""
    with tempfile.TemporaryDirectory(prefix="risk-worker-lock-") as tmp:
        venv = Path(tmp) / "venv"
        say(f"resolving '.[dev]' afresh in a throwaway virtual environment ({venv})")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
        install = [str(python), "-m", "pip", "install", "--quiet", "-e", ".[dev]"]
        subprocess.run(install, cwd=ROOT, check=True)
        freeze = [str(python), "-m", "pip", "freeze", "--exclude-editable"]
        frozen = subprocess.run(freeze, cwd=ROOT, check=True, capture_output=True, text=True)
        pins = sorted(
            (line.split("==")[0].lower().replace("_", "-").replace(".", "-"), line.split("==")[1])
            for line in frozen.stdout.splitlines()
            if "==" in line and not line.startswith("#")
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
    code = subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT, check=False).returncode
    if code == PYTEST_NO_TESTS_COLLECTED:
        say("pytest collected no tests: treating that as a failure")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
