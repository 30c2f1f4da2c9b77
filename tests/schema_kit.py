"""A small JSON Schema (2020-12) validator for the subset ``docs/contract/schemas/`` uses.

The project has no ``jsonschema`` package; the contract's schemas are msgspec's, which use a
handful of keywords. Each is checked here; a keyword outside the subset raises, so a schema
that grows one is never passed unchecked. (The AsyncAPI test also validates every example with
Ajv, a complete validator, when node is present.)
"""

from __future__ import annotations

import math
import re
from typing import Any

ANNOTATIONS = {"$schema", "title", "description", "default", "examples"}
_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (
        not isinstance(v, bool) and isinstance(v, int | float) and float(v).is_integer()
    ),
    "number": lambda v: not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v),
}


def _ecma(pattern: str) -> str:
    """An ECMA-262 pattern of the subset (``^…$``, classes, counts) as a Python one: ``$`` is
    the end of the input there, ``\\Z`` here."""
    return (
        pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
    )


def errors(value: Any, schema: dict[str, Any], root: dict[str, Any], at: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (``root`` holds its ``$defs``), as
    ``<path>: <what>``; empty when it validates."""
    found: list[str] = []
    for key, rule in schema.items():
        if key in ANNOTATIONS or key == "$defs":
            continue
        if key == "$ref":
            name = rule.removeprefix("#/$defs/")
            found += errors(value, root["$defs"][name], root, at)
        elif key == "anyOf":
            branches = [errors(value, s, root, at) for s in rule]
            if all(branches):
                found.append(f"{at}: matches no branch of anyOf: {branches}")
        elif key == "type":
            if not _TYPES[rule](value):
                found.append(f"{at}: {value!r} is not of type {rule}")
        elif key == "enum":
            if value not in rule:
                found.append(f"{at}: {value!r} is not one of {rule}")
        elif key == "const":
            if value != rule:
                found.append(f"{at}: {value!r} is not {rule!r}")
        else:
            found += _keyword(key, rule, value, schema, root, at)
    return found


def _keyword(
    key: str, rule: Any, value: Any, schema: dict[str, Any], root: dict[str, Any], at: str
) -> list[str]:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    bounds = {
        "minimum": lambda: value >= rule,
        "maximum": lambda: value <= rule,
        "exclusiveMinimum": lambda: value > rule,
        "exclusiveMaximum": lambda: value < rule,
    }
    if key in bounds:
        return [] if not number or bounds[key]() else [f"{at}: {value!r} breaks {key} {rule}"]
    if key in ("minLength", "maxLength", "pattern"):
        if not isinstance(value, str):
            return []
        ok = {
            "minLength": lambda: len(value) >= rule,
            "maxLength": lambda: len(value) <= rule,
            "pattern": lambda: re.search(_ecma(rule), value) is not None,
        }[key]()
        return [] if ok else [f"{at}: {value!r} breaks {key} {rule!r}"]
    if key in ("items", "minItems", "maxItems"):
        if not isinstance(value, list):
            return []
        if key == "items":
            return [e for i, v in enumerate(value) for e in errors(v, rule, root, f"{at}[{i}]")]
        ok = len(value) >= rule if key == "minItems" else len(value) <= rule
        return [] if ok else [f"{at}: {len(value)} items breaks {key} {rule}"]
    if key in ("properties", "required", "additionalProperties"):
        return _object(key, rule, value, schema, root, at) if isinstance(value, dict) else []
    raise AssertionError(f"schema keyword {key!r} is outside the subset this validator knows")


def _object(
    key: str,
    rule: Any,
    value: dict[str, Any],
    schema: dict[str, Any],
    root: dict[str, Any],
    at: str,
) -> list[str]:
    if key == "required":
        return [f"{at}: {name!r} is required" for name in rule if name not in value]
    if key == "properties":
        return [
            e for n, s in rule.items() if n in value for e in errors(value[n], s, root, f"{at}.{n}")
        ]
    known = schema.get("properties", {})
    extra = {n: v for n, v in value.items() if n not in known}
    if rule is False:
        return [f"{at}: unexpected {n!r}" for n in extra]
    if rule is True:
        return []
    return [e for n, v in extra.items() for e in errors(v, rule, root, f"{at}.{n}")]


def validate(value: Any, schema: dict[str, Any]) -> list[str]:
    """:func:`errors` of ``value`` against a standalone schema (its own ``$defs``)."""
    return errors(value, schema, schema)
