"""Builds the compiled decision core: ``risk_worker/domain`` with mypyc, where a C compiler exists.

Everything else about the package is in ``pyproject.toml``; this file only adds the extension
modules. ``build_ext`` compiles every domain module but those of
``risk_worker._core.INTERPRETED`` into C extensions beside the ``.py`` modules (which stay in the
package as the fallback) and writes the stamp ``risk_worker/domain/_compiled.json`` (the sha256
of the domain sources it compiled). ``RISK_CORE_BUILD`` says what to do:

- ``auto`` (default): compile; when that is impossible (no C compiler, no mypy in the build
  environment, a compile error) print one line saying so and install the pure-Python core;
- ``required``: compile or fail the build (the container image);
- ``pure``: do not compile.

An in-place build (``pip install -e .``) first removes the extensions and stamp of an earlier
build, so a failed or skipped build never leaves a stale core behind. mypy (mypyc) comes from
the build environment: ``scripts/dev.py`` and ``docker/Dockerfile`` install it at the version
``requirements-dev.lock`` pins and build with ``--no-build-isolation``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
MODE_VARIABLE = "RISK_CORE_BUILD"
MODES = ("auto", "required", "pure")


def say(message: str) -> None:
    """One line to stderr (pip shows it with -v, or when the build fails)."""
    print(f"risk-worker build: {message}", file=sys.stderr, flush=True)


def load_core() -> ModuleType:
    """``risk_worker/_core.py`` loaded by path (standard library only; the package is not
    importable while it is being built)."""
    spec = importlib.util.spec_from_file_location(
        "_risk_worker_core", ROOT / "risk_worker/_core.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CORE = load_core()


class BuildCore(build_ext):
    """``build_ext`` that compiles the decision core with mypyc, or falls back to pure."""

    def finalize_options(self) -> None:
        """Reads :data:`MODE_VARIABLE` (the metadata steps finalize this command too: the
        expensive part waits for :meth:`run`)."""
        self._mode = os.environ.get(MODE_VARIABLE, "auto").strip().lower() or "auto"
        if self._mode not in MODES:
            raise SystemExit(f"{MODE_VARIABLE}={self._mode!r}: expected one of {', '.join(MODES)}")
        self._built = False
        self._in_place = False
        super().finalize_options()

    def run(self) -> None:
        """Builds the compiled core when possible; writes the stamp where the extensions went
        (also the source tree when in place, after removing an earlier build's extensions and
        stamp there)."""
        started = time.monotonic()
        # what is compiled, taken before mypyc reads the sources: an edit during the build
        # makes the build stale, never a stale build current
        stamp = {"sources_sha256": CORE.sources_digest(), "modules": CORE.compiled_names()}
        in_place = self._in_place = bool(self.inplace)
        if in_place:
            remove_artefacts(CORE.DOMAIN_DIR)
        self.extensions = self._core_extensions()
        if not self.extensions:
            return
        super().run()
        if not self._built:
            return
        from mypy.version import __version__ as mypy_version  # noqa: PLC0415 (build only)

        stamp["compiler"] = f"mypyc {mypy_version}"
        targets = [Path(self.build_lib) / "risk_worker" / "domain"]
        if in_place:
            targets.append(CORE.DOMAIN_DIR)
        for target in targets:
            target.mkdir(parents=True, exist_ok=True)
            (target / CORE.STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
        say(f"compiled decision core built in {time.monotonic() - started:.0f} s")

    def _core_extensions(self) -> list[Extension]:
        """mypyc's extensions (its C generated; mypyc type-checks the domain first), set up as
        ``build_ext.finalize_options`` sets up each extension; none when pure or impossible."""
        if self._mode == "pure":
            say(f"{MODE_VARIABLE}=pure: the decision core is not compiled")
            self._record(f"{MODE_VARIABLE}=pure at install")
            return []
        try:
            probe_compiler()
        except Exception as exc:
            self._fall_back(exc, "no working C compiler")
            return []
        try:
            extensions = mypyc_extensions()
        except (Exception, SystemExit) as exc:  # mypyc exits on a type error (printed above)
            self._fall_back(exc, "mypyc failed")
            return []
        for ext in extensions:  # as setuptools' finalize_options (no shared-library extensions)
            fullname = ext._full_name = self.get_ext_fullname(ext.name)
            self.ext_map[fullname] = self.ext_map[fullname.split(".")[-1]] = ext
            ext._links_to_dynamic = ext._needs_stub = False
            ext._file_name = self.get_ext_filename(fullname)
        return extensions

    def build_extensions(self) -> None:
        """Compiles the C (both cores' build uses every CPU); a failure falls back to pure."""
        if not self.extensions:
            return
        self.parallel = max(1, os.cpu_count() or 1)
        try:
            super().build_extensions()
        except (Exception, SystemExit) as exc:
            self._fall_back(exc, "the C compilation failed")
            return
        self._built = True

    def _fall_back(self, exc: BaseException, what: str) -> None:
        """Raises ``exc`` when the compiled core is required, else says the core is pure."""
        if self._mode == "required":
            raise exc
        lines = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {lines[-1][:200]}" if lines else type(exc).__name__
        say(
            f"{what} ({detail}): the decision core is installed as pure Python, not compiled "
            f"({MODE_VARIABLE}=required makes this an error)"
        )
        self._record(f"{what} at install ({detail})")

    def _record(self, reason: str) -> None:
        """Leaves why there is no compiled core where the worker looks for one."""
        targets = [Path(self.build_lib) / "risk_worker" / "domain"]
        if self._in_place:
            targets.append(CORE.DOMAIN_DIR)
        for target in targets:
            target.mkdir(parents=True, exist_ok=True)
            (target / CORE.NOT_BUILT).write_text(reason + "\n")


def probe_compiler() -> None:
    """Compiles an empty C file with the configured C compiler (``CC`` and Python's build
    flags); raises when there is no working one."""
    from distutils.ccompiler import new_compiler  # noqa: PLC0415 (setuptools' distutils)
    from distutils.sysconfig import customize_compiler  # noqa: PLC0415

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory(prefix="risk-worker-cc-") as tmp:
        source = Path(tmp) / "probe.c"
        source.write_text("int risk_worker_probe(void) { return 0; }\n")
        try:
            compiler.compile([str(source)], output_dir=tmp)
        except Exception as exc:
            how = "not found" if "No such file" in str(exc) else "fails on an empty C file"
            raise RuntimeError(f"{compiler.compiler_so[0]} {how}") from exc


def mypyc_extensions() -> list[Extension]:
    """mypyc's extensions for the compiled domain modules (their C generated under
    ``build/mypyc``): the code of every one in one shared library,
    ``risk_worker.domain._core__mypyc``, and a small extension per module that loads it."""
    from mypyc.build import mypycify  # noqa: PLC0415 (only the build environment has it)

    paths = [f"risk_worker/domain/{name}.py" for name in CORE.compiled_names()]
    extensions: list[Extension] = mypycify(
        paths,
        opt_level="3",
        debug_level="1",
        group_name=CORE.GROUP,
        target_dir=os.path.join("build", "mypyc"),
    )
    return extensions


def remove_artefacts(domain_dir: Path) -> None:
    """Removes the extension modules and stamp (or reason) of an earlier in-place build."""
    for path in domain_dir.iterdir():
        if path.name in {CORE.STAMP, CORE.NOT_BUILT} or path.name.endswith(
            tuple(_EXTENSION_SUFFIXES)
        ):
            path.unlink()


_EXTENSION_SUFFIXES = importlib.machinery.EXTENSION_SUFFIXES

setup(
    # A placeholder (the wheel has extension modules), replaced by mypyc's extensions when
    # build_ext runs: mypyc type-checks the domain first, so it runs only to build.
    ext_modules=[Extension(CORE.GROUP + "__mypyc", sources=[])],
    cmdclass={"build_ext": BuildCore},
)
