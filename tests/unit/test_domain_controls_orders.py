"""Order-level controls: duplicate order id, open orders, and their order."""

from __future__ import annotations

import pytest

from risk_worker.domain.book_events import Fill
from risk_worker.domain.order import Order
from risk_worker.domain.policies import Policy, default_policies
from risk_worker.domain.trading_state import StateValue, account_key
from risk_worker.domain.types import (
    DenyReason,
    Metric,
    Operator,
    PolicyType,
    RiskLevel,
    Scope,
    Side,
    TradingState,
)
from risk_worker.wire.inbound import pending_order, reservation_msg
from tests.controls_kit import (
    ACCT,
    BTC,
    ETH,
    NOW,
    check,
    control,
    make_engine,
    order,
)

# duplicate order id


def test_check_when_same_order_retried_then_same_approval_duplicate_and_one_reservation() -> None:
    engine = make_engine()
    first = check(engine, order(Side.BUY, 2.0, 1_000.0))
    assert first.approved is True and first.reservation is not None
    retry = check(engine, order(Side.BUY, 2.0, 1_000.0), NOW + 5)
    assert (retry.approved, retry.reason, retry.duplicate) == (True, None, True)
    assert retry.risk_level is first.risk_level
    assert retry.reservation is None  # nothing announced, nothing reserved again
    assert "duplicate" in retry.message
    assert len(engine.book.accounts[ACCT].pending) == 1
    assert first.duplicate is False


@pytest.mark.parametrize(
    "changed",
    [
        order(Side.BUY, 3.0, 1_000.0),
        order(Side.SELL, 2.0, 1_000.0),
        order(Side.BUY, 2.0, 1_001.0),
        order(Side.BUY, 2.0, None),
        order(Side.BUY, 2.0, 100.0, symbol=ETH),
    ],
    ids=["quantity", "side", "price", "type", "symbol"],
)
def test_check_when_order_id_reused_with_other_content_then_duplicate_order_id(
    changed: Order,
) -> None:
    engine = make_engine()
    assert check(engine, order(Side.BUY, 2.0, 1_000.0)).approved is True
    decision = check(engine, changed)
    assert (decision.approved, decision.reason) == (False, DenyReason.DUPLICATE_ORDER_ID)
    assert decision.message.startswith("Duplicate Order Id: order_id o1")
    [reservation] = engine.book.accounts[ACCT].pending._orders.values()
    assert reservation.signed_qty == 2.0  # the live order is untouched


def test_check_when_dry_run_reuses_a_live_order_id_then_checked_as_before() -> None:
    engine = make_engine()
    check(engine, order(Side.BUY, 2.0, 1_000.0))
    decision = check(engine, order(Side.BUY, 5.0, 1_000.0, dry_run=True))
    assert (decision.approved, decision.duplicate) == (True, False)


def test_check_when_reservation_lapsed_or_filled_then_order_id_is_new_again() -> None:
    engine = make_engine()
    check(engine, order(Side.BUY, 2.0, 1_000.0))
    later = NOW + engine.config.pending_ttl_ms + 1
    decision = check(engine, order(Side.BUY, 3.0, 1_000.0), later)
    assert (decision.approved, decision.duplicate) == (True, False)
    engine.apply_fill(Fill("f1", "o1", ACCT, BTC, Side.BUY, 3.0, 1_000.0, 0.0, later))
    decision = check(engine, order(Side.BUY, 3.0, 1_000.0), later + 1)
    assert (decision.approved, decision.duplicate) == (True, False)


def test_check_when_reservation_announced_by_another_instance_then_retry_is_duplicate() -> None:
    first, second = make_engine(), make_engine()
    approved = check(first, order(Side.BUY, 2.0, 1_000.0, strategy="s1"))
    assert approved.reservation is not None
    second.apply_reservation(ACCT, pending_order(reservation_msg("w1", ACCT, approved.reservation)))
    retry = check(second, order(Side.BUY, 2.0, 1_000.0, strategy="s1"))
    assert (retry.approved, retry.duplicate, retry.risk_level) == (True, True, RiskLevel.HIGH)
    other = check(second, order(Side.BUY, 2.5, 1_000.0, strategy="s1"))
    assert other.reason is DenyReason.DUPLICATE_ORDER_ID


# open orders


def test_check_when_open_orders_at_the_limit_then_too_many_open_orders() -> None:
    engine = make_engine([control(Metric.OPEN_ORDERS, 2.0, name="Max Open Orders")])
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o1")).approved
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o2")).approved
    for dry in (True, False):
        decision = check(engine, order(Side.BUY, 0.1, 1_000.0, "o3", dry_run=dry))
        assert (decision.approved, decision.reason) == (False, DenyReason.TOO_MANY_OPEN_ORDERS)
        assert decision.violations[0].value == 3.0
    engine.apply_fill(Fill("f1", "o1", ACCT, BTC, Side.BUY, 0.1, 1_000.0, 0.0, NOW))
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o3")).approved is True


def test_check_when_open_orders_scoped_to_symbol_or_strategy_then_counts_only_those() -> None:
    engine = make_engine(
        [
            control(Metric.OPEN_ORDERS, 1.0, Scope.SYMBOL, ETH, name="ETH Open"),
            control(Metric.OPEN_ORDERS, 1.0, Scope.STRATEGY, "s1", name="S1 Open"),
        ]
    )
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o1")).approved
    assert check(engine, order(Side.BUY, 0.1, 100.0, "o2", symbol=ETH)).approved
    decision = check(engine, order(Side.BUY, 0.1, 100.0, "o3", symbol=ETH))
    assert [v.policy.name for v in decision.violations] == ["ETH Open"]
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o4", strategy="s1")).approved
    decision = check(engine, order(Side.BUY, 0.1, 1_000.0, "o5", strategy="s1"))
    assert [v.policy.name for v in decision.violations] == ["S1 Open"]
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o6", strategy="s2")).approved


def test_check_when_dry_run_rechecks_a_live_order_then_it_is_not_counted_twice() -> None:
    engine = make_engine([control(Metric.OPEN_ORDERS, 1.0)])
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o1")).approved
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o1", dry_run=True)).approved


def test_check_when_reducing_order_within_the_open_orders_limit_then_approved() -> None:
    engine = make_engine([control(Metric.OPEN_ORDERS, 1.0)], position=5.0)
    engine.states.apply(account_key(ACCT), StateValue(TradingState.REDUCING, "test"), 1)
    assert check(engine, order(Side.SELL, 1.0, 1_000.0, "o1")).approved is True
    decision = check(engine, order(Side.SELL, 1.0, 1_000.0, "o2"))
    assert decision.reason is DenyReason.TOO_MANY_OPEN_ORDERS


# order of the controls


def test_check_when_several_controls_apply_then_throttle_first_then_collar_size_open() -> None:
    policies = [
        *default_policies(),
        control(Metric.OPEN_ORDERS, 0.0, name="No Orders"),
        control(Metric.ORDER_RATE, 0.0, name="No Rate"),
    ]
    engine = make_engine(policies, balance=1_000.0)
    huge_through = order(Side.BUY, 1e6, 2_000.0)
    assert check(engine, huge_through).reason is DenyReason.RATE_LIMITED
    dry = order(Side.BUY, 1e6, 2_000.0, dry_run=True)
    assert check(engine, dry).reason is DenyReason.PRICE_OUT_OF_COLLAR
    dry = order(Side.BUY, 1e6, 1_000.0, dry_run=True)
    assert check(engine, dry).reason is DenyReason.ORDER_TOO_LARGE
    dry = order(Side.BUY, 0.1, 1_000.0, dry_run=True)
    assert check(engine, dry).reason is DenyReason.TOO_MANY_OPEN_ORDERS


def test_check_when_controls_and_margin_both_fail_then_control_first() -> None:
    engine = make_engine(
        [*default_policies(), control(Metric.ORDER_QUANTITY, 1.0)], balance=1_000.0
    )
    decision = check(engine, order(Side.BUY, 5.0, 1_000.0))  # margin 500 < 1000, but qty 5 > 1
    assert decision.reason is DenyReason.ORDER_TOO_LARGE


def test_check_when_symbol_band_and_account_band_then_both_apply_in_priority_order() -> None:
    account_band = Policy(
        "id-acct", "A1 Band", PolicyType.HARD, Metric.PRICE_DEVIATION, Operator.LTE, 0.02,
        Scope.ACCOUNT, ACCT, priority=1,
    )  # fmt: skip
    symbol_band = Policy(
        "id-sym", "BTC Band", PolicyType.HARD, Metric.PRICE_DEVIATION, Operator.LTE, 0.03,
        Scope.SYMBOL, BTC, priority=2,
    )  # fmt: skip
    engine = make_engine([*default_policies(), symbol_band, account_band])
    decision = check(engine, order(Side.BUY, 1.0, 1_040.0))
    assert [v.policy.name for v in decision.violations] == ["A1 Band", "BTC Band"]
