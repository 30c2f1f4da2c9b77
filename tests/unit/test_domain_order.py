"""Order and Decision as plain classes (native ones in the compiled core): the constructors,
equality, hashing and repr of the msgspec Structs they were."""

from __future__ import annotations

import pytest

from risk_worker import _core
from risk_worker.domain.order import Decision, Order, deny
from risk_worker.domain.types import DenyReason, OrderType, RiskLevel, Side, TradingState


def order(
    side: Side = Side.BUY,
    *,
    strategy_id: str | None = None,
    dry_run: bool = False,
    timestamp: int = 0,
) -> Order:
    return Order(
        "o1", "a1", "BTC", side, 2.0, 100.0, OrderType.LIMIT, strategy_id, dry_run=dry_run,
        timestamp=timestamp,
    )  # fmt: skip


def test_order_when_defaults_then_as_the_struct() -> None:
    o = order()
    assert (o.strategy_id, o.reduce_only, o.dry_run, o.timestamp) == (None, False, False, 0)
    assert o.signed_quantity == 2.0 and order(Side.SELL).signed_quantity == -2.0
    assert repr(o) == (
        "Order(order_id='o1', account_id='a1', symbol='BTC', side=<Side.BUY: 'BUY'>, "
        "quantity=2.0, price=100.0, order_type=<OrderType.LIMIT: 'LIMIT'>, strategy_id=None, "
        "reduce_only=False, dry_run=False, timestamp=0)"
    )


def test_order_when_compared_then_by_value_and_hashed_by_value() -> None:
    assert order() == order() and order() != order(timestamp=1)
    assert order() != order(Side.SELL) and order() != order(strategy_id="s")
    assert hash(order()) == hash(order()) and len({order(), order(), order(dry_run=True)}) == 2


@pytest.mark.skipif(_core.STATUS.active != "compiled", reason="only a native class enforces")
def test_order_when_compiled_then_fields_read_only() -> None:
    with pytest.raises(AttributeError):
        order().quantity = 1.0  # type: ignore[misc]


def test_decision_when_defaults_then_as_the_struct_and_fresh_containers() -> None:
    a, b = Decision(True, None, "ok", RiskLevel.LOW), Decision(True, None, "ok", RiskLevel.LOW)
    assert (a.trading_state, a.metrics, a.reservation, a.duplicate) == (
        TradingState.ACTIVE, None, None, False
    )  # fmt: skip
    assert a.violations == [] and a.warnings == [] and a.utilization == {}
    assert a.violations is not b.violations and a.warnings is not b.warnings
    assert a.violations is not a.warnings and a.utilization is not b.utilization
    assert repr(a).startswith("Decision(approved=True, reason=None, message='ok', ")
    assert repr(a).endswith("utilization={}, reservation=None, duplicate=False)")


def test_decision_when_compared_then_field_by_field_and_unhashable() -> None:
    a = deny(DenyReason.UNKNOWN_ACCOUNT, "m")
    assert a == deny(DenyReason.UNKNOWN_ACCOUNT, "m")
    assert a != deny(DenyReason.UNKNOWN_ACCOUNT, "m", RiskLevel.LOW)
    assert a != Decision(False, DenyReason.UNKNOWN_ACCOUNT, "m", RiskLevel.HIGH, duplicate=True)
    with pytest.raises(TypeError):
        hash(a)
