"""Property: whatever bytes arrive on ``risk.check.order``, the answer is a reply, and nothing
that is not a well-formed order is ever approved (issue 10, acceptance).

In process: the same :class:`CheckHandler` the NATS endpoint calls, over a book with one known
account and a fresh mark. The over-NATS property test is in tests/integration.
"""

from __future__ import annotations

import math
import time
from typing import Any

import msgspec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from risk_worker.adapters.check_handler import CheckHandler
from risk_worker.bench.core import NullSink
from risk_worker.domain.book_events import PnlSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.policies import default_policies
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.wire import check_request
from tests.junk import ACCOUNT, BALANCE, MARK, SYMBOL, deeply_nested, encode, payloads, templates

MAX_REQUEST_BYTES = 65_536
NOW = time.time_ns() // 1_000_000


def engine_with_account() -> RiskEngine:
    """One known account (balance 100,000) and a fresh mark for BTCUSDT."""
    engine = RiskEngine(RiskConfig())
    engine.load_policies(default_policies())
    now = time.time_ns() // 1_000_000
    engine.apply_pnl(PnlSnapshot(ACCOUNT, BALANCE, None, None, now))
    engine.set_mark(SYMBOL, MARK, now, now)
    return engine


def answer(handler: CheckHandler, data: bytes) -> dict[str, Any]:
    """The decoded reply; it must be a JSON object whatever came in."""
    reply: dict[str, Any] = msgspec.json.decode(handler.answer(data).payload)
    assert isinstance(reply["approved"], bool)
    return reply


def parses(data: bytes) -> bool:
    """Whether the request is a well-formed order (any failure, of any kind, means no)."""
    try:
        check_request.parse_check(data, MAX_REQUEST_BYTES)
    except Exception:  # RecursionError too: not well-formed
        return False
    return True


def assert_finite(reply: dict[str, Any]) -> None:
    """Every number in a reply is finite (non-finite ratios are null)."""
    metrics = reply.get("post_trade_metrics") or {}
    for key, value in metrics.items():
        if isinstance(value, float):
            assert math.isfinite(value), (key, value)


HANDLER = CheckHandler(engine_with_account(), lambda: True, "prop", MAX_REQUEST_BYTES, NullSink())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads(templates(NOW)["risk.check.order"]))
def test_check_when_request_is_hostile_then_replies_and_never_approves_invalid(data: bytes) -> None:
    reply = answer(HANDLER, data)
    event(f"reply: {reply['rejection_reason'] or 'approved'}")
    if not parses(data):
        assert reply["approved"] is False
        assert reply["rejection_reason"] == "invalid_request", reply
    assert_finite(reply)
    if reply["approved"]:
        order = check_request.parse_check(data, MAX_REQUEST_BYTES)
        price = MARK if order.price is None else order.price
        # The account has 100,000 and a 10 % margin rate: no approval beyond 10x its equity.
        assert order.quantity * price <= 10 * BALANCE * (1 + 1e-9), reply


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=10_000, max_value=30_000))  # past any recursion limit, < 64 KiB
def test_check_when_request_nested_deeply_then_invalid_request_reply(depth: int) -> None:
    body = templates(NOW)["risk.check.order"]
    reply = answer(HANDLER, deeply_nested(body, depth))
    assert reply["approved"] is False
    assert reply["rejection_reason"] == "invalid_request"


def test_check_after_hostile_requests_then_well_formed_orders_still_decided_right() -> None:
    handler = CheckHandler(
        engine_with_account(), lambda: True, "prop", MAX_REQUEST_BYTES, NullSink()
    )
    body = templates(NOW)["risk.check.order"]
    for junk in (deeply_nested(body, 2000), b"\xff", encode({**body, "quantity": 1e308})):
        assert answer(handler, junk)["approved"] is False
    small = answer(handler, encode({**body, "order_id": "ok", "dry_run": True}))
    assert small["approved"] is True, small
    large = answer(handler, encode({**body, "order_id": "big", "quantity": 30.0}))
    assert large["approved"] is False
    assert large["rejection_reason"] == "order_too_large"  # over 10 × equity: Max Order Size
