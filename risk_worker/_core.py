"""Which decision core runs: the domain compiled by mypyc, or its pure-Python modules.

``risk_worker/domain`` is compiled into C extension modules at install time where a C compiler
exists (``setup.py``, with mypyc); its ``.py`` modules stay beside them as the fallback. The
build writes :data:`STAMP` next to the extensions: the sha256 of the domain's sources it
compiled (:func:`sources_digest`) and the modules it compiled. At import of ``risk_worker``,
before any ``risk_worker.domain`` module is loaded, :func:`activate` reads
``RISK_DECISION_CORE`` (:data:`SETTING`):

- ``auto`` (the default): the compiled core when it is present, current (its stamp matches
  the sources now on disk) and loads; otherwise the pure modules, and :data:`STATUS` says why;
- ``compiled``: the same, but the worker refuses to start when the compiled core cannot run
  (:func:`risk_worker.service.settings.load_settings` checks :data:`STATUS`);
- ``pure``: the ``.py`` modules, whatever is compiled.

Running pure installs a meta-path finder that loads every ``risk_worker.domain.*`` module from
its source file, so a present extension is never used; a stale one (the sources edited since the
build) is never run. Modules that define msgspec Structs or enums stay interpreted in both cores
(:data:`INTERPRETED`). Standard library only: ``setup.py`` loads this file by path, before the
package is installed. Nothing here runs at import: ``risk_worker/__init__.py`` calls
:func:`activate`.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

SETTING = "RISK_DECISION_CORE"
CHOICES = ("auto", "compiled", "pure")
DOMAIN = "risk_worker.domain"
DOMAIN_DIR = Path(__file__).resolve().parent / "domain"
STAMP = "_compiled.json"
"""The build's record in the domain package: ``{"sources_sha256", "modules", "compiler"}``."""
NOT_BUILT = "_not_compiled.txt"
"""Written instead by a build that fell back to pure: why it did (one line)."""
GROUP = DOMAIN + "._core"
"""mypyc's group name: every compiled module's code is in the one extension ``<GROUP>__mypyc``
(each module's own extension is a small shim that loads it)."""
INTERPRETED = frozenset(
    {
        "__init__",
        "batch",
        "book_events",
        "persistence",
        "policies",
        "reports",
        "restricted",
        "state_keys",
        "strategy_persistence",
        "types",
        "var_result",
    }
)
"""Domain modules never compiled: each defines msgspec Structs or enums, which mypyc would
change (``tests/unit/test_core.py`` checks that no other module defines any), and the package
``__init__``. mypyc hands msgspec a compiled Struct's annotations without their type parameters
(a decoder would accept what it must refuse) and replaces a compiled Enum's docstring (the
wire contract's descriptions)."""


class CoreStatus(NamedTuple):
    """The decision core of this process: ``requested`` (the setting as given, lower-cased),
    ``active`` (``"compiled"`` or ``"pure"``), ``available`` (a current compiled core loads)
    and ``reason`` (one line: why this core, for the start log and ``/ready``)."""

    requested: str
    active: str
    available: bool
    reason: str


STATUS = CoreStatus("auto", "pure", False, "not selected yet (risk_worker not imported)")
"""This process's core, set once by :func:`activate`."""
_activated = False


def sources_digest(domain_dir: Path = DOMAIN_DIR) -> str:
    """sha256 (hex) of every ``*.py`` of the domain package: names and contents, by name."""
    digest = hashlib.sha256()
    for path in sorted(domain_dir.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def compiled_names(domain_dir: Path = DOMAIN_DIR) -> list[str]:
    """The domain modules the build compiles (file stems): every ``*.py`` but
    :data:`INTERPRETED`, by name."""
    return sorted(p.stem for p in domain_dir.glob("*.py") if p.stem not in INTERPRETED)


def extension_of(name: str, domain_dir: Path = DOMAIN_DIR) -> Path | None:
    """The extension module file of domain module ``name`` for this interpreter, if any."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = domain_dir / (name + suffix)
        if path.is_file():
            return path
    return None


def compiled_problem(domain_dir: Path = DOMAIN_DIR) -> str | None:
    """Why the compiled core cannot run (one line), or None when it is built, current and
    its code loads. Imports the compiled code's shared extension, no domain module."""
    stamp_path = domain_dir / STAMP
    if not stamp_path.is_file():
        why = domain_dir / NOT_BUILT
        if why.is_file():
            return "no compiled core is built: " + why.read_text().strip()
        return "no compiled core is built (not compiled at install)"
    try:
        stamp = json.loads(stamp_path.read_text())
        built, modules = str(stamp["sources_sha256"]), [str(m) for m in stamp["modules"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"the compiled core's stamp {stamp_path} is unreadable ({exc})"
    if built != sources_digest(domain_dir):
        return (
            "the compiled core is stale: risk_worker/domain changed since it was built "
            "(rebuild: python3 scripts/dev.py test, or pip install -e .)"
        )
    missing = [m for m in modules if extension_of(m, domain_dir) is None]
    if missing or not modules:
        return "the compiled core is incomplete: no extension for " + ", ".join(missing or ["-"])
    try:
        load_group(domain_dir)
    except Exception as exc:  # any failure to load means: do not run it
        return f"the compiled core does not load ({type(exc).__name__}: {exc})"
    return None


def load_group(domain_dir: Path = DOMAIN_DIR) -> None:
    """Loads the compiled code's shared extension (``<GROUP>__mypyc``) from its file, past
    :class:`PureDomainFinder` (a pure process may still ask whether the compiled core loads).

    Raises:
        ImportError: there is no such file, or it does not load.
    """
    name = GROUP + "__mypyc"
    if name in sys.modules:
        return
    path = extension_of(name.rpartition(".")[2], domain_dir)
    spec = None if path is None else importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no extension {name} in {domain_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


class PureDomainFinder(importlib.abc.MetaPathFinder):
    """Loads every ``risk_worker.domain.<name>`` from ``<name>.py``, never an extension."""

    def __init__(self, domain_dir: Path = DOMAIN_DIR) -> None:
        self.domain_dir = domain_dir

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """A source spec for a domain module; None for any other module."""
        package, _, name = fullname.rpartition(".")
        if package != DOMAIN:
            return None
        source = self.domain_dir / (name + ".py")
        if not source.is_file():
            raise ModuleNotFoundError(
                f"{fullname}: the pure decision core has no source {source}", name=fullname
            )
        loader = importlib.machinery.SourceFileLoader(fullname, str(source))
        return importlib.util.spec_from_file_location(fullname, source, loader=loader)


def select(env: Mapping[str, str], domain_dir: Path = DOMAIN_DIR) -> CoreStatus:
    """The core ``env`` asks for and can have (no side effect but loading the compiled code's
    shared extension when it is considered). An unknown value counts as ``auto`` here; the
    worker's settings refuse it."""
    requested = env.get(SETTING, "").strip().lower() or "auto"
    if requested == "pure":
        return CoreStatus(requested, "pure", False, f"{SETTING}=pure")
    problem = compiled_problem(domain_dir)
    if problem is None:
        return CoreStatus(requested, "compiled", True, "compiled with mypyc, current")
    return CoreStatus(requested, "pure", False, problem)


def activate(env: Mapping[str, str] | None = None) -> CoreStatus:
    """Selects this process's core once, before any domain module is imported; sets
    :data:`STATUS` and, for the pure core, installs :class:`PureDomainFinder` first on
    ``sys.meta_path``. Later calls return the first selection."""
    global STATUS, _activated
    if _activated:
        return STATUS
    status = select(os.environ if env is None else env)
    if status.active == "pure":
        sys.meta_path.insert(0, PureDomainFinder())
    STATUS, _activated = status, True
    return status
