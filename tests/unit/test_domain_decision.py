"""The pre-trade check: every reason code and their order."""

from __future__ import annotations

import pytest

from risk_worker.domain.policies import Policy, default_policies
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.trading_state import GLOBAL_KEY, account_key
from risk_worker.domain.types import (
    DenyReason,
    Metric,
    Operator,
    PolicyType,
    RiskLevel,
    Side,
    TradingState,
)
from tests.decision_kit import (
    ACCT,
    BTC,
    GROSS_CAP,
    NOW,
    ORDER_NOTIONAL_CAP,
    POST_TRADE,
    fill,
    make_engine,
    order,
    set_state,
)

# approval and reason codes


def test_check_when_order_fits_then_approved_low_and_reserved():
    engine = make_engine()
    decision = engine.check(order(Side.BUY, 3.0, 1_000.0), NOW, True)  # leverage 0.3
    assert decision.approved is True
    assert decision.reason is None
    assert decision.message == "approved"
    assert decision.risk_level is RiskLevel.LOW
    assert decision.violations == []
    assert decision.metrics is not None
    assert decision.metrics.gross_exposure == pytest.approx(3_000.0)
    assert len(engine.book.accounts[ACCT].pending) == 1


def test_check_when_state_not_confirmed_then_trading_state_unknown():
    decision = make_engine().check(order(Side.BUY, 1.0), NOW, False)
    assert (decision.approved, decision.reason) == (False, DenyReason.TRADING_STATE_UNKNOWN)


@pytest.mark.parametrize("key", [GLOBAL_KEY, account_key(ACCT)])
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])  # even a reducing order
def test_check_when_halted_then_emergency_stop_active(key, side):
    engine = make_engine(position=(2.0, 1_000.0))
    set_state(engine, key, TradingState.HALTED)
    decision = engine.check(order(side, 1.0), NOW, True)
    assert (decision.approved, decision.reason) == (False, DenyReason.EMERGENCY_STOP_ACTIVE)
    assert decision.risk_level is RiskLevel.BREACHED
    assert decision.trading_state is TradingState.HALTED


def test_check_when_other_account_halted_then_approved():
    engine = make_engine()
    set_state(engine, account_key("a2"), TradingState.HALTED)
    assert engine.check(order(Side.BUY, 1.0), NOW, True).approved is True


@pytest.mark.parametrize("key", [GLOBAL_KEY, account_key(ACCT)])
@pytest.mark.parametrize(
    ("position", "side", "quantity", "approved"),
    [
        ((2.0, 1_000.0), Side.SELL, 1.0, True),  # reduce
        ((2.0, 1_000.0), Side.SELL, 2.0, True),  # close
        ((-2.0, 1_000.0), Side.BUY, 1.5, True),  # reduce a short
        ((2.0, 1_000.0), Side.SELL, 3.0, False),  # flip
        ((2.0, 1_000.0), Side.BUY, 1.0, False),  # increase
        (None, Side.BUY, 1.0, False),  # open
        (None, Side.SELL, 1.0, False),
    ],
)
def test_check_when_reducing_then_only_strict_reductions_pass(
    key, position, side, quantity, approved
):
    engine = make_engine(position=position)
    set_state(engine, key, TradingState.REDUCING)
    decision = engine.check(order(side, quantity), NOW, True)
    assert decision.approved is approved
    assert decision.reason is (None if approved else DenyReason.REDUCING_ONLY)
    assert decision.trading_state is TradingState.REDUCING
    if not approved:
        assert decision.risk_level is RiskLevel.BREACHED


def test_check_when_account_never_seen_then_unknown_account():
    decision = make_engine(balance=None).check(order(Side.BUY, 1.0), NOW, True)
    assert (decision.approved, decision.reason) == (False, DenyReason.UNKNOWN_ACCOUNT)


def test_check_when_account_only_has_fills_then_unknown_account():
    engine = make_engine(balance=None)
    engine.apply_fill(fill("x", Side.BUY, 1.0, 1_000.0, NOW - 10, "f1"))
    decision = engine.check(order(Side.SELL, 0.5), NOW, True)
    assert decision.reason is DenyReason.UNKNOWN_ACCOUNT


def test_check_when_account_only_has_position_update_then_known():
    engine = make_engine(balance=None, position=(0.0, 0.0))
    decision = engine.check(order(Side.BUY, 1.0), NOW, True)
    # got past the account check: equity 0 makes any order too large for Max Order Size
    assert decision.reason is DenyReason.ORDER_TOO_LARGE


@pytest.mark.parametrize(
    ("position", "side", "quantity", "approved"),
    [
        (None, Side.SELL, 1.0, False),  # flat
        ((2.0, 1_000.0), Side.BUY, 1.0, False),  # same side
        ((2.0, 1_000.0), Side.SELL, 2.5, False),  # flip
        ((2.0, 1_000.0), Side.SELL, 2.0, True),  # close
        ((-2.0, 1_000.0), Side.BUY, 1.0, True),  # reduce short
    ],
)
def test_check_when_reduce_only_then_denied_unless_strictly_reducing(
    position, side, quantity, approved
):
    engine = make_engine(position=position)
    decision = engine.check(order(side, quantity, reduce_only=True), NOW, True)
    assert decision.approved is approved
    assert decision.reason is (None if approved else DenyReason.REDUCE_ONLY_WOULD_INCREASE)


@pytest.mark.parametrize(
    ("mark", "mark_age_ms", "approved"),
    [
        (None, 0, False),
        (1_000.0, 30_001, False),  # older than mark_max_age_ms
        (1_000.0, 30_000, True),  # exactly at the limit
        (1_000.0, 0, True),
    ],
)
def test_check_when_market_order_then_needs_fresh_mark(mark, mark_age_ms, approved):
    engine = make_engine(mark=mark, mark_age_ms=mark_age_ms)
    decision = engine.check(order(Side.BUY, 1.0, price=None), NOW, True)
    assert decision.approved is approved
    assert decision.reason is (None if approved else DenyReason.NO_MARKET_PRICE)


def test_check_when_limit_order_without_mark_then_not_no_market_price():
    assert make_engine().check(order(Side.BUY, 1.0, price=1_000.0), NOW, True).approved is True


def test_check_when_market_order_approved_then_reserved_at_mark():
    engine = make_engine(mark=2_000.0)
    engine.check(order(Side.BUY, 1.5, price=None), NOW, True)
    m = engine.metrics(ACCT, NOW)
    assert m is not None
    assert m.pending_notional == pytest.approx(3_000.0)


@pytest.mark.parametrize(
    ("price", "approved"),
    [
        (8_000.0, True),  # margin 1000 = available 1000: not greater → approved
        (8_008.0, False),  # margin 1001 > 1000
    ],
)
def test_check_when_margin_needed_vs_available_then_denied_only_above(price, approved):
    config = RiskConfig(margin_rates={BTC: 0.125})
    engine = make_engine(balance=1_000.0, config=config)
    decision = engine.check(order(Side.BUY, 1.0, price=price), NOW, True)
    assert decision.approved is approved
    assert decision.reason is (None if approved else DenyReason.INSUFFICIENT_MARGIN)


def test_check_when_flip_then_margin_only_for_flipped_remainder():
    # long 2 @ 1000, balance 500: available = 500 - position margin 200 = 300.
    # sell 4 opens short 2 → needs 200 (not 400) → ok; sell 6 opens short 4 → 400 > 300
    engine = make_engine(balance=500.0, position=(2.0, 1_000.0), policies=[])
    assert engine.check(order(Side.SELL, 4.0, dry_run=True), NOW, True).approved is True
    denied = engine.check(order(Side.SELL, 6.0, dry_run=True), NOW, True)
    assert denied.reason is DenyReason.INSUFFICIENT_MARGIN


def test_check_when_hard_policy_violated_post_trade_then_policy_violation():
    # margin 5 %: 11 BTC @ 1000 on 1000 equity needs 550 margin but leverage 11 > 10
    engine = make_engine(
        balance=1_000.0, config=RiskConfig(default_margin_rate=0.05), policies=POST_TRADE
    )
    decision = engine.check(order(Side.BUY, 11.0), NOW, True)
    assert (decision.approved, decision.reason) == (False, DenyReason.POLICY_VIOLATION)
    assert decision.risk_level is RiskLevel.BREACHED
    assert [v.policy.name for v in decision.violations] == ["Max Account Leverage"]
    assert decision.message.startswith("Max Account Leverage: leverage 11")
    assert decision.utilization["Max Account Leverage"] == pytest.approx(1.1)
    assert len(engine.book.accounts[ACCT].pending) == 0


def test_check_when_several_violations_then_message_of_highest_priority():
    late = Policy(
        "id-l", "Late", PolicyType.HARD, Metric.ORDER_QUANTITY, Operator.LT, 1.0, priority=50
    )
    early = Policy(
        "id-e", "Early", PolicyType.HARD, Metric.ORDER_NOTIONAL, Operator.LT, 1.0, priority=1
    )
    decision = make_engine(policies=[late, early]).check(order(Side.BUY, 2.0), NOW, True)
    assert [v.policy.name for v in decision.violations] == ["Early", "Late"]
    assert decision.message.startswith("Early:")


def test_check_when_no_policy_set_loaded_then_policies_unavailable():
    decision = make_engine(load_policies=False).check(order(Side.BUY, 1.0), NOW, True)
    assert (decision.approved, decision.reason) == (False, DenyReason.POLICIES_UNAVAILABLE)


# first denial wins

SCENARIOS = {
    "unconfirmed_and_halted": (
        {"confirmed": False, "halted": True},
        DenyReason.TRADING_STATE_UNKNOWN,
    ),
    "halted_and_reducing_and_unknown": (
        {"halted": True, "reducing": True, "unknown": True},
        DenyReason.EMERGENCY_STOP_ACTIVE,
    ),
    "reducing_and_unknown": ({"reducing": True, "unknown": True}, DenyReason.REDUCING_ONLY),
    "unknown_and_reduce_only_and_no_mark": (
        {"unknown": True, "reduce_only": True, "market": True},
        DenyReason.UNKNOWN_ACCOUNT,
    ),
    "reduce_only_and_no_mark": (
        {"reduce_only": True, "market": True},
        DenyReason.REDUCE_ONLY_WOULD_INCREASE,
    ),
    "no_mark_and_no_margin": ({"market": True, "poor": True}, DenyReason.NO_MARKET_PRICE),
    "no_margin_and_order_cap": ({"poor": True, "capped": True}, DenyReason.ORDER_TOO_LARGE),
    "no_margin_and_policy": (
        {"poor": True, "gross_capped": True},
        DenyReason.INSUFFICIENT_MARGIN,
    ),
    "policy_only": ({"gross_capped": True}, DenyReason.POLICY_VIOLATION),
}


@pytest.mark.parametrize(("flags", "expected"), list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_check_when_several_denials_apply_then_first_in_order_wins(flags, expected):
    engine = make_engine(
        balance=None if flags.get("unknown") else (10.0 if flags.get("poor") else 10_000.0),
        policies=[*default_policies(), ORDER_NOTIONAL_CAP]
        if flags.get("capped")
        else [*POST_TRADE, GROSS_CAP]  # without Max Order Size, which stops a poor account
        if flags.get("gross_capped")
        else None,
    )
    if flags.get("halted"):
        set_state(engine, GLOBAL_KEY, TradingState.HALTED)
    if flags.get("reducing"):
        set_state(engine, account_key(ACCT), TradingState.REDUCING)
    price = None if flags.get("market") else 1_000.0
    o = order(Side.BUY, 1.0, price=price, reduce_only=bool(flags.get("reduce_only")))
    decision = engine.check(o, NOW, flags.get("confirmed", True))
    assert decision.approved is False
    assert decision.reason is expected
