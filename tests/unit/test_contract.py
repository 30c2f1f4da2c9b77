"""subjects.md is the wire contract: it must name exactly what the code sends and accepts.

Conventions of subjects.md that this test relies on:

- a message section's heading names its Struct in backticks, e.g. ``### Check request
  (`CheckRequestMsg`)``; the section runs to the next heading of any level;
- its field table is the first table whose header starts ``| field |``, with field names in
  backticks in the first column; the ``aliases`` column names other fields of the same Struct;
- it holds exactly one fenced ``json`` example;
- the subject table starts ``| subject |``, the reason-code table ``| code |``, the settings
  table ``| variable |``, the metric table ``| metric |`` and the default-policy table ``| name |``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from risk_worker.adapters import (
    event_stream,
    nats_service,
    operator,
    query_endpoints,
    reservation_outbox,
)
from risk_worker.adapters.input_stream import STREAM as INPUTS_STREAM
from risk_worker.adapters.kv_bucket import decode_restriction, decode_state
from risk_worker.adapters.nats_auth import NatsAuth
from risk_worker.adapters.var_store import VAR_RELOAD_SUBJECT
from risk_worker.domain.policies import Policy, default_policies, validate_policy
from risk_worker.domain.reports import AlertLevel
from risk_worker.domain.restricted import Restriction
from risk_worker.domain.trading_state import ACCOUNT_KEY_PREFIX, GLOBAL_KEY, StateValue
from risk_worker.domain.types import DenyReason, Metric, RiskLevel, Scope
from risk_worker.service import monitor_task
from risk_worker.service.settings import Settings
from risk_worker.wire import check_request, inbound, queries, ticks
from risk_worker.wire.audit import StateChangeRecord, ViolationRecord
from risk_worker.wire.outbound import (
    CANCEL_ALL_SUBJECT,
    AlertMsg,
    CancelAllMsg,
    CheckReplyMsg,
    RiskMetricsMsg,
    StateChangeMsg,
    ViolationMsg,
)
from risk_worker.wire.reservations import ReservationBatchMsg

DOC = Path(__file__).resolve().parents[2] / "subjects.md"
TEXT = DOC.read_text(encoding="utf-8")

INBOUND: dict[str, type[msgspec.Struct]] = {
    "PositionUpdateMsg": inbound.PositionUpdateMsg,
    "FillMsg": inbound.FillMsg,
    "TickMsg": inbound.TickMsg,
    "PnlUpdateMsg": inbound.PnlUpdateMsg,
    "CheckRequestMsg": check_request.CheckRequestMsg,
    "MetricsQueryMsg": queries.MetricsQueryMsg,
    "BatchRequestMsg": queries.BatchRequestMsg,
}
OUTBOUND: dict[str, type[msgspec.Struct]] = {
    "CheckReplyMsg": CheckReplyMsg,
    "ViolationMsg": ViolationMsg,
    "RiskMetricsMsg": RiskMetricsMsg,
    "AlertMsg": AlertMsg,
    "StateChangeMsg": StateChangeMsg,
    "ViolationRecord": ViolationRecord,
    "ReservationMsg": inbound.ReservationMsg,
    "ReservationBatchMsg": ReservationBatchMsg,
    "StateChangeRecord": StateChangeRecord,
    "CancelAllMsg": CancelAllMsg,
    "BatchReplyMsg": queries.BatchReplyMsg,
    "StatesReplyMsg": queries.StatesReplyMsg,
    "StateRowMsg": queries.StateRowMsg,
    "RestrictionRowMsg": queries.RestrictionRowMsg,
    "QueryErrorMsg": queries.QueryErrorMsg,
}
STORED: dict[str, type[msgspec.Struct]] = {
    "StateValue": StateValue,
    "Policy": Policy,
    "Restriction": Restriction,
}
STRUCTS = {**INBOUND, **OUTBOUND, **STORED}

PARSERS: dict[str, Callable[[bytes], object]] = {
    "PositionUpdateMsg": inbound.parse_position,
    "FillMsg": inbound.parse_fill,
    "TickMsg": lambda data: ticks.parse_tick(data, "market.tick.BTCUSDT"),
    "PnlUpdateMsg": inbound.parse_pnl,
    "CheckRequestMsg": lambda data: check_request.parse_check(data, Settings().max_request_bytes),
    "MetricsQueryMsg": lambda data: queries.parse_metrics_query(data, 65_536),
    "BatchRequestMsg": lambda data: queries.parse_batch(data, 65_536, Settings().max_batch),
    "StateValue": decode_state,
    "Restriction": decode_restriction,
    "Policy": lambda data: validate_policy(msgspec.json.decode(data, type=Policy)),
}

FIELD_HEADER = ["field", "type", "unit", "required/default", "aliases", "notes"]


# -- parsing subjects.md ------------------------------------------------------------------------


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """(heading, body lines) for every heading; '#' lines inside code fences are not headings."""
    out: list[tuple[str, list[str]]] = [("", [])]
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            out.append((line.lstrip("#").strip(), []))
        else:
            out[-1][1].append(line)
    return out


def _cells(line: str) -> list[str]:
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def _tables(lines: list[str], first_header: str) -> list[list[list[str]]]:
    """Tables whose header's first cell is ``first_header``: rows of cells, header included."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in lines:
        if not line.lstrip().startswith("|"):
            current = None
            continue
        cells = _cells(line)
        if current is None:
            if cells[0] == first_header:
                current = [cells]
                tables.append(current)
        elif not all(re.fullmatch(r":?-+:?", c) for c in cells):
            current.append(cells)
    return tables


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"expected one `code` span in the first column, got {cell!r}"
    return match.group(1)


def _codes(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _one_table(first_header: str, heading_contains: str | None = None) -> list[list[str]]:
    found = [
        t
        for heading, lines in _sections(TEXT)
        if heading_contains is None or heading_contains in heading
        for t in _tables(lines, first_header)
    ]
    assert len(found) == 1, f"expected one table starting '| {first_header} |', found {len(found)}"
    return found[0]


def _message_sections() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for heading, lines in _sections(TEXT):
        for name in _codes(heading):
            if name in STRUCTS:
                assert name not in out, f"two sections are headed with `{name}`"
                out[name] = lines
    return out


SECTIONS = _message_sections()


def _field_table(name: str) -> list[list[str]]:
    tables = _tables(SECTIONS[name], "field")
    assert tables, f"section of {name} has no table starting '| field |'"
    return tables[0]


def _example(name: str) -> bytes:
    blocks = re.findall(r"^```json\n(.*?)^```", "\n".join(SECTIONS[name]), re.S | re.M)
    assert len(blocks) == 1, f"section of {name} must hold one ```json example"
    return str(blocks[0]).encode()


def _names(cls: type[msgspec.Struct]) -> set[str]:
    return {f.name for f in msgspec.structs.fields(cls)}


# -- message tables -----------------------------------------------------------------------------


def test_every_struct_has_a_section() -> None:
    assert set(SECTIONS) == set(STRUCTS)


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_field_table_matches_struct(name: str) -> None:
    table = _field_table(name)
    assert table[0] == FIELD_HEADER
    documented = [_code(row[0]) for row in table[1:]]
    assert len(documented) == len(set(documented)), f"{name}: a field is listed twice"
    fields = _names(STRUCTS[name])
    assert set(documented) - fields == set(), f"{name}: documented fields not in the Struct"
    assert fields - set(documented) == set(), f"{name}: Struct fields missing from the table"
    for row in table[1:]:
        assert len(row) == len(FIELD_HEADER), f"{name}: row {row[0]} has {len(row)} cells"
        assert set(_codes(row[4])) <= fields, f"{name}: alias of {row[0]} is not a field"


@pytest.mark.parametrize("name", sorted({**INBOUND, **STORED}))
def test_inbound_example_decodes_and_parses(name: str) -> None:
    data = _example(name)
    decoded = msgspec.json.decode(data, type=STRUCTS[name])
    keys = set(msgspec.json.decode(data))
    assert keys <= _names(STRUCTS[name]), f"{name} example has unknown fields"
    parsed = PARSERS[name](data)
    if name in ("StateValue", "Restriction"):
        assert parsed == decoded  # not the fail-closed stand-in


@pytest.mark.parametrize("name", sorted(OUTBOUND))
def test_outbound_example_round_trips(name: str) -> None:
    """Decoding then encoding gives the example back: every field, nothing else, any depth."""
    data = _example(name)
    decoded = msgspec.json.decode(data, type=OUTBOUND[name])
    assert msgspec.json.decode(msgspec.json.encode(decoded)) == msgspec.json.decode(data)


# -- reason codes -------------------------------------------------------------------------------


def test_reason_codes_table_lists_every_deny_reason() -> None:
    rows = _one_table("code", "Reason codes")[1:]
    codes = [_code(row[0]) for row in rows]
    assert len(codes) == len(set(codes))
    assert set(codes) == {r.value for r in DenyReason}
    for row in rows:
        assert row[-1] in {level.value for level in RiskLevel}, row


def test_risk_levels_of_approvals_documented() -> None:
    assert "≥ 0.8 `HIGH`, ≥ 0.5 `MEDIUM`, else `LOW`" in TEXT


# -- subjects and keys --------------------------------------------------------------------------


def test_subject_table_matches_code() -> None:
    rows = _one_table("subject")[1:]
    subjects = {_code(row[0]): row for row in rows}
    assert len(subjects) == len(rows)
    inbound = {
        nats_service.CHECK_SUBJECT,
        nats_service.POSITIONS_SUBJECT,
        nats_service.FILLS_SUBJECT,
        nats_service.TICKS_SUBJECT.replace("*", "<symbol>"),
        nats_service.PNL_SUBJECT,
        VAR_RELOAD_SUBJECT,
    }
    requests = {nats_service.CHECK_SUBJECT} | {s for _, s, _ in query_endpoints.ENDPOINTS}
    inbound |= requests
    outbound = {
        monitor_task.METRICS_SUBJECT,
        operator.EMERGENCY_SUBJECT,
        event_stream.VIOLATION_PREFIX + "<account_id>",
        event_stream.EMERGENCY_PREFIX + "<scope>",
        reservation_outbox.RESERVATIONS_SUBJECT,
        CANCEL_ALL_SUBJECT,
    } | {monitor_task.ALERTS_PREFIX + level.value for level in AlertLevel}
    assert set(subjects) == inbound | outbound
    for subject, row in subjects.items():
        assert row[1] == ("in" if subject in inbound else "out"), row
        queue = f"`{nats_service.CHECK_QUEUE}`"
        assert (queue in row[3]) == (subject in requests), row
        messages = _codes(row[4])
        assert messages or subject == VAR_RELOAD_SUBJECT, row  # its body is empty
        assert set(messages) <= set(STRUCTS), row


def test_kv_keys_bucket_and_settings_documented() -> None:
    assert f"`{GLOBAL_KEY}`" in TEXT
    assert f"`{ACCOUNT_KEY_PREFIX}<account_id>`" in TEXT
    assert f"`{Settings().kv_bucket}`" in TEXT


def test_settings_table_defaults_match() -> None:
    defaults = Settings()
    fields = _names(Settings)
    for row in _one_table("variable")[1:]:
        variable = _code(row[0])
        name = variable.removeprefix("RISK_").lower()
        assert name in fields, variable
        expected: Any = getattr(defaults, name)
        cell = row[1].strip("`")
        if isinstance(expected, dict | tuple):
            assert cell == "(none)" and not expected, variable
        elif isinstance(expected, str):
            assert cell == expected, variable
        else:
            assert float(cell) == expected, variable


def test_every_mentioned_variable_exists() -> None:
    fields = _names(Settings) | {f"nats_{name}" for name in NatsAuth.__struct_fields__}
    streams = {event_stream.STREAM, INPUTS_STREAM}
    for variable in set(re.findall(r"\bRISK_[A-Z_]+\b", TEXT)) - streams:
        assert variable.removeprefix("RISK_").lower() in fields, variable


# -- policies -----------------------------------------------------------------------------------


def test_metric_table_lists_every_metric() -> None:
    rows = _one_table("metric")[1:]
    assert {_code(row[0]) for row in rows} == {m.value for m in Metric}


def test_default_policies_table_matches() -> None:
    rows = _one_table("name")[1:]
    policies = {p.name: p for p in default_policies()}
    assert {row[0] for row in rows} == set(policies)
    for name, kind, metric, op, threshold, priority in rows:
        p = policies[name]
        assert (kind, metric, op) == (p.type.value, p.metric.value, p.operator.value), name
        assert (float(threshold), int(priority)) == (p.threshold, p.priority), name
        assert (p.scope, p.scope_id) == (Scope.ACCOUNT, None), name
