"""Text for the contract files: the examples of subjects.md, and a deterministic YAML writer.

subjects.md heads each message section with its Struct in backticks (``### Fill
(`FillMsg`)``) and holds one fenced ``json`` example in it (``tests/unit/test_contract.py``
holds it to that). :func:`examples_from_markdown` reads those examples;
:func:`to_yaml` writes the AsyncAPI document as block-style YAML without a YAML library (the
worker's image has none): mappings keep their insertion order, strings that could read as
anything but a string are double-quoted, so ``yaml.safe_load(to_yaml(doc)) == doc``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

_HEADING = re.compile(r"^#+\s")
_FENCE = re.compile(r"^```json\n(.*?)^```", re.S | re.M)
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/ ]*")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def examples_from_markdown(text: str, names: Iterable[str]) -> dict[str, tuple[str, Any]]:
    """The heading and the fenced ``json`` example of each named message section of ``text``.

    Args:
        text: subjects.md.
        names: the message (Struct) names wanted.

    Returns:
        name → (the section's heading without ``#`` and backticks, e.g. ``3.2 Fill (FillMsg)``;
        its first example decoded, objects in their key order); a name without a section or
        without an example is absent.
    """
    wanted = set(names)
    sections: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and _HEADING.match(line):
            codes = [c for c in re.findall(r"`([^`]+)`", line) if c in wanted]
            heading = line.lstrip("#").strip().replace("`", "")
            current = sections.setdefault(codes[0], (heading, []))[1] if codes else None
        elif current is not None:
            current.append(line)
    found: dict[str, tuple[str, Any]] = {}
    for name, (heading, lines) in sections.items():
        blocks = _FENCE.findall("\n".join(lines) + "\n")
        if blocks:
            found[name] = (heading, json.loads(blocks[0]))
    return found


def _float(value: float) -> str:
    """A float YAML 1.1 and 1.2 both read as that float: a dot in the mantissa (``1.0e-12``)."""
    if not math.isfinite(value):
        raise ValueError(f"not a JSON number: {value!r}")
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if e and exponent[0] not in "+-":
        exponent = "+" + exponent
    return mantissa + e + exponent


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED and not text.endswith(" "):
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted.replace("\u2028", "\\L").replace("\u2029", "\\P").replace("\x85", "\\N")


def _lines(value: Any, indent: str) -> list[str]:
    """``value`` (a mapping or a list, not empty) as block lines at ``indent``."""
    out: list[str] = []
    items = value.items() if isinstance(value, dict) else (("-", v) for v in value)
    for key, item in items:
        head = f"{indent}{key if key == '-' and isinstance(value, list) else _scalar(key) + ':'}"
        if isinstance(item, dict | list) and item:
            if isinstance(value, list):
                nested = _lines(item, indent + "  ")
                out.append(f"{head} {nested[0].lstrip()}")
                out.extend(nested[1:])
            else:
                out.append(head)
                out.extend(_lines(item, indent + "  "))
        elif isinstance(item, dict | list):
            out.append(f"{head} {'{}' if isinstance(item, dict) else '[]'}")
        else:
            out.append(f"{head} {_scalar(item)}")
    return out


def to_yaml(document: dict[str, Any]) -> str:
    """``document`` (JSON values: dicts with string keys, lists, str, int, float, bool, None)
    as block-style YAML 1.2, one trailing newline; the same input gives the same text."""
    return "\n".join(_lines(document, "")) + "\n"
