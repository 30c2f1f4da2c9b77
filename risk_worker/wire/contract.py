"""The machine-readable contract: JSON Schemas of the messages and the AsyncAPI 3.0 document.

Generated from the msgspec Structs (``msgspec.json.schema_components``) and the channel table
(:mod:`risk_worker.wire.contract_channels`), with the examples of subjects.md.
:func:`render_contract` returns every file as text; ``risk-worker contract --out docs/contract/``
writes them and ``--check`` compares. The same Structs give the same bytes (sorted definitions,
the Structs' field order), so the files are committed and CI fails when the code moves away.

On top of what msgspec emits: a pattern's Python ``\\Z`` is written ``$`` (the same anchor in
JSON Schema's ECMA-262 regexes, where ``\\Z`` is no end anchor); a batch's ``orders`` are
``CheckRequestMsg`` items (the Struct keeps them raw to name the failing order); a message with
both ``account_id`` and its alias ``account`` optional requires one of them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from risk_worker import __version__
from risk_worker.wire import audit, check_request, inbound, outbound, queries, reservations
from risk_worker.wire.asyncapi import asyncapi_document
from risk_worker.wire.contract_channels import CHANNELS
from risk_worker.wire.contract_text import examples_from_markdown, to_yaml

STRUCTS: dict[str, type[msgspec.Struct]] = {
    cls.__name__: cls
    for cls in (
        check_request.CheckRequestMsg,
        outbound.CheckReplyMsg,
        queries.BatchRequestMsg,
        queries.BatchReplyMsg,
        queries.MetricsQueryMsg,
        outbound.RiskMetricsMsg,
        queries.StatesReplyMsg,
        queries.QueryErrorMsg,
        inbound.PositionUpdateMsg,
        inbound.FillMsg,
        inbound.TickMsg,
        inbound.PnlUpdateMsg,
        outbound.AlertMsg,
        outbound.StateChangeMsg,
        reservations.ReservationBatchMsg,
        inbound.ReservationMsg,
        outbound.CancelAllMsg,
        audit.ViolationRecord,
        audit.StateChangeRecord,
    )
}
"""Every message a channel carries that has a Struct, by name (one schema file each)."""

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_FILE = "asyncapi.yaml"
SCHEMA_DIR = "schemas"
_REF = re.compile(r"^#/\$defs/(.+)$")


def _walk(node: Any, visit: Any) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _ecma_pattern(node: dict[str, Any]) -> None:
    pattern = node.get("pattern")
    if isinstance(pattern, str) and pattern.endswith("\\Z"):
        node["pattern"] = pattern[: -len("\\Z")] + "$"


def definitions() -> dict[str, dict[str, Any]]:
    """Every schema the messages use, by name, references as ``#/$defs/<name>``, sorted."""
    _, defs = msgspec.json.schema_components(list(STRUCTS.values()), ref_template="#/$defs/{name}")
    batch = defs["BatchRequestMsg"]["properties"]["orders"]
    batch["items"] = {"$ref": "#/$defs/CheckRequestMsg"}
    batch["minItems"] = 1
    for schema in defs.values():
        props, required = schema.get("properties", {}), schema.get("required", [])
        if {"account_id", "account"} <= props.keys() and not {"account_id", "account"} & set(
            required
        ):
            schema["anyOf"] = [{"required": ["account_id"]}, {"required": ["account"]}]
    _walk(defs, _ecma_pattern)
    return {name: defs[name] for name in sorted(defs)}


def _refs(node: Any) -> set[str]:
    found: set[str] = set()

    def visit(d: dict[str, Any]) -> None:
        match = _REF.match(str(d.get("$ref", "")))
        if match:
            found.add(match.group(1))

    _walk(node, visit)
    return found


def message_schema(name: str, defs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The standalone JSON Schema (2020-12) of message ``name``: its definition and every one
    it references, under ``$defs``."""
    needed, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current not in needed:
            needed.add(current)
            todo.extend(_refs(defs[current]))
    return {
        "$schema": SCHEMA_DIALECT,
        "$ref": f"#/$defs/{name}",
        "$defs": {n: defs[n] for n in sorted(needed)},
    }


def _component_refs(node: Any) -> Any:
    text = json.dumps(node).replace('"#/$defs/', '"#/components/schemas/')
    return json.loads(text)


def render_contract(subjects_text: str) -> dict[str, str]:
    """Every contract file, by path relative to the output directory, as text.

    Args:
        subjects_text: subjects.md, whose message sections give the examples.

    Returns:
        ``asyncapi.yaml`` (AsyncAPI 3.0.0) and ``schemas/<Message>.json`` for each of
        :data:`STRUCTS`, sorted by path.
    """
    defs = definitions()
    names = {m for c in CHANNELS for m in (*c.messages, *c.replies)}
    examples = examples_from_markdown(subjects_text, names)
    document = asyncapi_document(_component_refs(defs), examples, set(STRUCTS), __version__)
    files = {ASYNCAPI_FILE: to_yaml(document)}
    for name in STRUCTS:
        text = json.dumps(message_schema(name, defs), indent=2, ensure_ascii=False)
        files[f"{SCHEMA_DIR}/{name}.json"] = text + "\n"
    return dict(sorted(files.items()))
