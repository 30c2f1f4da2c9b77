"""W3C traceparent: what the worker carries and what it ignores (subjects.md §5.1)."""

from __future__ import annotations

import msgspec
import pytest

from risk_worker.adapters.pg_sink import violation_args
from risk_worker.wire.audit import ViolationRecord
from risk_worker.wire.trace import header_traceparent, log_fields, parse_traceparent, trace_id

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "value",
    [VALID, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", f"01{VALID[2:]}-extra"],
)
def test_parse_traceparent_when_valid_then_returned_unchanged(value: str) -> None:
    assert parse_traceparent(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        VALID.upper(),  # upper-case hex
        f"ff{VALID[2:]}",  # version ff
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # zero trace id
        f"00-4bf92f3577b34da6a3ce929d0e0e4736-{'0' * 16}-01",  # zero parent id
        f"{VALID}-extra",  # version 00 is exactly 55 characters
        f"01{VALID[2:]}x",  # a later version: extra fields after a dash only
        VALID[:-1],
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        f"01{VALID[2:]}-{'a' * 300}",  # too long
    ],
)
def test_parse_traceparent_when_malformed_then_none(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_header_traceparent_when_no_headers_or_other_headers_then_none() -> None:
    assert header_traceparent(None) is None
    assert header_traceparent({}) is None
    assert header_traceparent({"Traceparent": VALID}) == VALID  # nats.go's canonical form
    assert header_traceparent({"TRACEPARENT": VALID}) is None
    assert header_traceparent({"traceparent": VALID}) == VALID


def test_log_fields_and_trace_id() -> None:
    assert trace_id(VALID) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert log_fields(None) == {}
    assert log_fields(VALID) == {"traceparent": VALID, "trace_id": trace_id(VALID)}


def test_violation_args_when_traced_then_context_holds_traceparent_and_trace_id() -> None:
    record = ViolationRecord(
        "id", 0, "A", "p", "P", "hard", "leverage", 1.0, 0.5, "pre_trade", "denied",
        traceparent=VALID,
    )  # fmt: skip
    context = violation_args(record)[-1]
    assert f'"traceparent":"{VALID}"' in context
    assert '"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"' in context
    untraced = msgspec.structs.replace(record, traceparent=None)
    assert "trace" not in violation_args(untraced)[-1]
