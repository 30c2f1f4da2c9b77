"""The package tree is the architecture: each wing imports only the wings below it, no cycles.

cli → service → adapters → wire → domain; devstack and bench sit beside the CLI (the CLI may
use them; they may use the service and everything below it, never the CLI). The client (what an
OMS imports) may use the wire and the domain and, of the adapters, only ``nats_auth`` (the
connection and credentials): never the service or the worker's adapters; the CLI may use it.
``errors``, the package root (``__version__``) and ``_core`` (which decision core runs, chosen
when the root is imported) are leaves anyone but the domain may import.
Every import counts, also one inside a function or under ``TYPE_CHECKING``. The rules are the
README's "Code map".
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "risk_worker"
BELOW = {
    "domain": set(),
    "wire": {"domain", "errors", "root", "core"},
    "adapters": {"wire", "domain", "errors", "root", "core"},
    "service": {"adapters", "wire", "domain", "errors", "root", "core"},
    "devstack": {"service", "adapters", "wire", "domain", "errors", "root", "core"},
    "bench": {"devstack", "service", "adapters", "wire", "domain", "errors", "root", "core"},
    "client": {"wire", "domain", "errors", "root", "core"},
    "cli": {
        "client",
        "bench",
        "devstack",
        "service",
        "adapters",
        "wire",
        "domain",
        "errors",
        "root",
        "core",
    },
    "errors": set(),
    "root": {"core"},
    "core": set(),
    "main": {"cli"},
}
"""Wing → the other wings it may import (its own always)."""
ALSO = {"client": {"risk_worker.adapters.nats_auth"}}
"""Wing → single modules of other wings it may import besides :data:`BELOW`'s."""
WINGS = ("domain", "wire", "adapters", "service", "cli", "devstack", "bench", "client")


def module_name(path: Path, root: Path = ROOT) -> str:
    """``risk_worker.a.b`` of ``risk_worker/a/b.py`` (a package is its ``__init__``)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def wing(module: str) -> str:
    """The wing a module belongs to."""
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    if parts[1] in WINGS:
        return parts[1]
    return {"errors": "errors", "__main__": "main", "_core": "core"}[parts[1]]


def imports(source: str, modules: set[str]) -> set[str]:
    """The risk_worker modules ``source`` imports (``from pkg import mod`` names the module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("risk_worker"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("risk_worker"):
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module → the risk_worker modules it imports, for every module under ``root``."""
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    modules = set(paths)
    return {m: imports(p.read_text(encoding="utf-8"), modules) - {m} for m, p in paths.items()}


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Every import that goes against :data:`BELOW`."""
    return sorted(
        f"{src} ({wing(src)}) imports {dst} ({wing(dst)})"
        for src, dsts in edges.items()
        for dst in dsts
        if wing(dst) != wing(src)
        and wing(dst) not in BELOW[wing(src)]
        and dst not in ALSO.get(wing(src), set())
    )


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles (strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_package_when_walked_then_every_module_is_in_a_wing() -> None:
    unplaced = [
        m for m in graph() if m.count(".") == 1 and wing(m) not in {"errors", "main", "core"}
    ]
    unplaced = [m for m in unplaced if m.split(".")[1] not in WINGS]
    assert unplaced == [], "a module outside the wings: " + ", ".join(unplaced)


def test_imports_when_walked_then_every_wing_imports_only_the_wings_below_it() -> None:
    assert violations(graph()) == []


def test_imports_when_walked_then_no_cycle() -> None:
    assert cycles(graph()) == []


def test_each_wing_init_says_what_lives_there_and_what_it_may_import() -> None:
    for name in WINGS:
        text = (ROOT / name / "__init__.py").read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(text))
        assert doc, f"risk_worker/{name}/__init__.py has no docstring"
        assert "may import" in doc.lower(), f"risk_worker/{name}: say what it may import"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (  # an adapter reaching the service (check_handler → sinks/observability before)
            {
                "adapters/x.py": "from risk_worker.service.observability import Metrics",
                "service/observability.py": "",
            },
            ["risk_worker.adapters.x (adapters) imports risk_worker.service.observability"],
        ),
        (
            {
                "domain/x.py": "def f():\n    from risk_worker.wire import inbound",
                "wire/inbound.py": "",
            },
            ["risk_worker.domain.x (domain) imports risk_worker.wire.inbound"],
        ),
        ({"cli/x.py": "from risk_worker.service import worker", "service/worker.py": ""}, []),
        ({"bench/x.py": "import risk_worker.cli.main", "cli/main.py": ""}, ["bench"]),
        (  # the client connects like the CLI, but no worker internals
            {
                "client/x.py": "from risk_worker.adapters.nats_auth import NatsAuth\n"
                "from risk_worker.adapters.check_handler import ERROR_CODE",
                "adapters/nats_auth.py": "",
                "adapters/check_handler.py": "",
            },
            ["risk_worker.client.x (client) imports risk_worker.adapters.check_handler"],
        ),
        ({"service/x.py": "import risk_worker.client", "client/__init__.py": ""}, ["service"]),
    ],
)
def test_violations_when_an_import_breaks_the_rules_then_reported(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    root = tmp_path / "risk_worker"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    found = violations(graph(root))
    assert len(found) == len(expected)
    for line, want in zip(found, expected, strict=True):
        assert want in line


def test_cycles_when_two_modules_import_each_other_then_reported(tmp_path: Path) -> None:
    root = tmp_path / "risk_worker"
    (root / "bench").mkdir(parents=True)
    (root / "bench" / "runner.py").write_text("from risk_worker.bench.summary import s\n")
    (root / "bench" / "summary.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from risk_worker.bench.runner import BenchConfig\n"
    )
    assert cycles(graph(root)) == [["risk_worker.bench.runner", "risk_worker.bench.summary"]]
