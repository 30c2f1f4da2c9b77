"""The decision core stays pure: no module of risk_worker.domain imports I/O, clocks or logging."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import risk_worker.domain

FORBIDDEN = frozenset(
    {
        "asyncio",
        "nats",
        "asyncpg",
        "redis",
        "logging",
        "time",
        "datetime",
        "socket",
        "random",
        "uuid",
    }
)


DOMAIN_DIR = Path(risk_worker.domain.__file__).parent


def domain_modules() -> list[str]:
    """Every module of the package that has a source (the compiled core's shared library,
    ``_core__mypyc``, is the compiled code of the others: their sources are checked)."""
    names = [risk_worker.domain.__name__]
    names += [
        info.name
        for info in pkgutil.walk_packages(
            risk_worker.domain.__path__, prefix=risk_worker.domain.__name__ + "."
        )
        if (DOMAIN_DIR / (info.name.rsplit(".", 1)[1] + ".py")).is_file()
    ]
    return sorted(names)


def imported_roots(source: str) -> set[str]:
    """Top-level package of every import in ``source`` (anywhere in the module)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ) or (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            roots.add(node.args[0].value.split(".")[0])
    return roots


def test_domain_modules_when_walked_then_every_expected_module_found():
    found = set(domain_modules())
    expected = {
        f"risk_worker.domain.{name}"
        for name in (
            "types",
            "positions",
            "pending",
            "book",
            "metrics",
            "policies",
            "trading_state",
            "guards",
            "decision",
            "monitor",
            "engine",
        )
    }
    assert expected <= found


@pytest.mark.parametrize("module_name", domain_modules())
def test_domain_module_when_imported_then_no_forbidden_import(module_name):
    module = importlib.import_module(module_name)
    assert module.__file__ is not None
    name = module_name.rsplit(".", 1)[1] if module_name.count(".") > 1 else "__init__"
    source = (DOMAIN_DIR / (name + ".py")).read_text(encoding="utf-8")  # also when compiled
    assert imported_roots(source) & FORBIDDEN == set()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import time", {"time"}),
        ("import os.path, logging", {"os", "logging"}),
        ("from datetime import datetime", {"datetime"}),
        ("from nats.aio import client", {"nats"}),
        ("def f():\n    import random\n", {"random"}),
        ("from . import book", set()),
        ("import importlib\nimportlib.import_module('uuid')", {"importlib", "uuid"}),
        ("__import__('socket')", {"socket"}),
    ],
)
def test_imported_roots_when_source_imports_then_detects_them(source, expected):
    assert imported_roots(source) == expected
