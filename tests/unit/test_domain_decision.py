"""The pre-trade check: every reason code, their order, reservations, REDUCING and warnings."""

from __future__ import annotations

import pytest

from risk_worker.domain.book import Fill, PnlSnapshot, PositionSnapshot
from risk_worker.domain.decision import Order, level_from_utilization
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.metrics import RiskConfig
from risk_worker.domain.policies import ORDER_METRICS, Policy, default_policies
from risk_worker.domain.trading_state import GLOBAL_KEY, StateValue, account_key
from risk_worker.domain.types import (
    DenyReason,
    Metric,
    Operator,
    OrderType,
    PolicyType,
    RiskLevel,
    Side,
    TradingState,
)

ACCT = "a1"
BTC = "BTCUSDT"
NOW = 1_700_000_000_000
CONFIG = RiskConfig()  # margin 10 %, mark max age 30 s, pending TTL 60 s

ORDER_NOTIONAL_CAP = Policy(
    "id-cap", "Order Cap", PolicyType.HARD, Metric.ORDER_NOTIONAL, Operator.LTE, 1.0
)
GROSS_CAP = Policy(
    "id-gross", "Gross Cap", PolicyType.HARD, Metric.GROSS_EXPOSURE, Operator.LTE, 1.0
)
POST_TRADE = [p for p in default_policies() if p.metric not in ORDER_METRICS]
"""The built-in set without its order-level controls (tests of the post-trade simulation)."""


def make_engine(
    balance: float | None = 10_000.0,
    position: tuple[float, float] | None = None,
    mark: float | None = None,
    mark_age_ms: int = 0,
    config: RiskConfig = CONFIG,
    policies: list[Policy] | None = None,
    load_policies: bool = True,
) -> RiskEngine:
    engine = RiskEngine(config)
    if load_policies:
        engine.load_policies(default_policies() if policies is None else policies)
    if balance is not None:
        engine.apply_pnl(PnlSnapshot(ACCT, balance, None, None, 1))
    if position is not None:
        engine.apply_position(PositionSnapshot(ACCT, BTC, position[0], position[1], 1))
    if mark is not None:
        engine.set_mark(BTC, mark, NOW - mark_age_ms, NOW - mark_age_ms)
    return engine


def order(
    side: Side,
    quantity: float,
    price: float | None = 1_000.0,
    order_id: str = "o1",
    *,
    reduce_only: bool = False,
    dry_run: bool = False,
) -> Order:
    order_type = OrderType.MARKET if price is None else OrderType.LIMIT
    return Order(
        order_id,
        ACCT,
        BTC,
        side,
        quantity,
        price,
        order_type,
        reduce_only=reduce_only,
        dry_run=dry_run,
        timestamp=NOW,
    )


def set_state(engine: RiskEngine, key: str, state: TradingState) -> None:
    engine.states.apply(key, StateValue(state, "test"), engine.states.revision(key) + 1)


def fill(order_id: str, side: Side, quantity: float, price: float, ts: int, fill_id: str) -> Fill:
    return Fill(fill_id, order_id, ACCT, BTC, side, quantity, price, 0.0, ts)


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


# reservations


def test_check_when_dry_run_then_nothing_reserved():
    engine = make_engine()
    decision = engine.check(order(Side.BUY, 3.0, dry_run=True), NOW, True)
    assert decision.approved is True
    m = engine.metrics(ACCT, NOW)
    assert m is not None
    assert (m.pending_orders, m.pending_notional, m.pending_margin) == (0, 0.0, 0.0)


def test_check_when_approved_then_reservation_counts_in_metrics():
    engine = make_engine()
    engine.check(order(Side.BUY, 3.0, 1_000.0), NOW, True)
    m = engine.metrics(ACCT, NOW)
    assert m is not None
    assert m.pending_orders == 1
    assert m.pending_notional == pytest.approx(3_000.0)
    assert m.pending_margin == pytest.approx(300.0)
    assert m.available_margin == pytest.approx(9_700.0)
    assert m.leverage == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("fills", "expected_pending_notional", "expected_position"),
    [
        ([1.0], 2_000.0, 1.0),  # partial fill: reservation shrinks
        ([1.0, 2.0], 0.0, 3.0),  # fully filled: released
    ],
)
def test_check_when_order_filled_then_reservation_consumed(
    fills, expected_pending_notional, expected_position
):
    engine = make_engine()
    engine.check(order(Side.BUY, 3.0, 1_000.0, order_id="o7"), NOW, True)
    for i, qty in enumerate(fills):
        engine.apply_fill(fill("o7", Side.BUY, qty, 1_000.0, NOW + 1 + i, f"f{i}"))
    m = engine.metrics(ACCT, NOW + 10)
    assert m is not None
    assert m.pending_notional == pytest.approx(expected_pending_notional)
    assert engine.book.accounts[ACCT].positions[BTC].quantity == pytest.approx(expected_position)
    # valued at entry: the position and the rest of the reservation, 3 BTC in all
    assert m.gross_exposure == pytest.approx(3_000.0)


def test_check_when_fill_has_other_order_id_then_reservation_kept():
    engine = make_engine()
    engine.check(order(Side.BUY, 3.0, 1_000.0, order_id="o7"), NOW, True)
    engine.apply_fill(fill("other", Side.BUY, 3.0, 1_000.0, NOW + 1, "f1"))
    m = engine.metrics(ACCT, NOW + 10)
    assert m is not None
    assert m.pending_notional == pytest.approx(3_000.0)


@pytest.mark.parametrize(
    ("elapsed_ms", "expected_orders"),
    [(59_999, 1), (60_000, 0), (120_000, 0)],
)
def test_check_when_pending_ttl_passes_then_reservation_released(elapsed_ms, expected_orders):
    engine = make_engine()
    engine.check(order(Side.BUY, 3.0, 1_000.0), NOW, True)
    m = engine.metrics(ACCT, NOW + elapsed_ms)
    assert m is not None
    assert m.pending_orders == expected_orders


def test_check_when_flip_approved_then_only_flipped_remainder_reserved():
    engine = make_engine(position=(1.0, 1_000.0))
    engine.check(order(Side.SELL, 3.0, 1_000.0), NOW, True)
    m = engine.metrics(ACCT, NOW)
    assert m is not None
    assert m.pending_notional == pytest.approx(2_000.0)


@pytest.mark.parametrize(
    ("dry_run", "expected"),
    [
        # each order: 0.5 BTC @ 40000 → margin 2000; 10500 equity fits five of them
        (False, [True, True, True, True, True, False, False]),
        (True, [True] * 7),  # dry runs reserve nothing: each passes alone
    ],
)
def test_check_when_burst_of_orders_then_only_those_that_fit_together_approve(dry_run, expected):
    engine = make_engine(balance=10_500.0)
    results = [
        engine.check(order(Side.BUY, 0.5, 40_000.0, f"o{i}", dry_run=dry_run), NOW, True)
        for i in range(7)
    ]
    assert [d.approved for d in results] == expected
    if not dry_run:
        assert {d.reason for d in results[5:]} == {DenyReason.INSUFFICIENT_MARGIN}


def test_check_when_burst_of_sells_against_pending_sells_then_flip_counts_as_increasing():
    # long 1: a pending sell of 1 already closes it, so the next sell of 1 opens a short
    engine = make_engine(balance=150.0, position=(1.0, 1_000.0))
    assert engine.check(order(Side.SELL, 1.0, order_id="s1"), NOW, True).approved is True
    # available = 150 - 100 position margin = 50 < 100 needed for a new short of 1
    second = engine.check(order(Side.SELL, 1.0, order_id="s2"), NOW, True)
    assert second.reason is DenyReason.INSUFFICIENT_MARGIN


def test_check_when_same_order_id_rechecked_then_own_reservation_not_double_counted():
    # PendingBook.add documents "add or replace (same order id, e.g. a re-check)":
    # re-checking an approved order must not count its own earlier reservation against it.
    engine = make_engine(balance=1_000.0)
    first = engine.check(order(Side.BUY, 6.0, 1_000.0, "o1"), NOW, True)  # margin 600
    again = engine.check(order(Side.BUY, 6.0, 1_000.0, "o1"), NOW + 1, True)
    assert first.approved is True
    assert again.approved is True, again.message


# drawdown: the reducing exemption


def drawdown_engine(equity_now: float) -> RiskEngine:
    """Peak 100000 observed; now long 10 BTC @ 1000 (mark 1000) and equity ``equity_now``.

    Post-trade policies only: the sells far below the mark would be stopped by the collar.
    """
    engine = make_engine(balance=100_000.0, mark=1_000.0, policies=POST_TRADE)
    engine.check(order(Side.BUY, 1.0, dry_run=True), NOW, True)  # observes the peak
    engine.apply_pnl(PnlSnapshot(ACCT, equity_now, None, None, 2))
    engine.apply_position(PositionSnapshot(ACCT, BTC, 10.0, 1_000.0, 2))
    return engine


@pytest.mark.parametrize(
    ("side", "quantity", "approved"),
    [
        (Side.SELL, 5.0, True),  # strictly reduces: held before → warning only
        (Side.SELL, 10.0, True),  # close
        (Side.BUY, 1.0, False),  # increases
        (Side.SELL, 11.0, False),  # flips
    ],
)
def test_check_when_drawdown_already_breached_then_only_reducing_orders_pass(
    side, quantity, approved
):
    engine = drawdown_engine(78_000.0)  # drawdown 0.22 > 0.20 (hard), ≤ 0.25 (emergency)
    decision = engine.check(order(side, quantity, 1_000.0), NOW + 1, True)
    assert decision.approved is approved
    names = [e.policy.name for e in (decision.warnings if approved else decision.violations)]
    assert "Max Drawdown" in names
    if not approved:
        assert decision.reason is DenyReason.POLICY_VIOLATION


def test_check_when_reducing_order_creates_new_violation_then_denied():
    # drawdown 0.15 before the order (equity 85000, peak 100000)
    engine = drawdown_engine(85_000.0)
    # selling 5 @ 100 realizes 5 × (100 - 1000) = -4500 → equity 80500, dd 0.195: holds
    assert engine.check(order(Side.SELL, 5.0, 100.0, dry_run=True), NOW + 1, True).approved
    # selling 10 @ 400 realizes -6000 → equity 79000, dd 0.21: a new violation → denied
    decision = engine.check(order(Side.SELL, 10.0, 400.0), NOW + 1, True)
    assert decision.reason is DenyReason.POLICY_VIOLATION
    assert [v.policy.name for v in decision.violations] == ["Max Drawdown"]


# soft policies and risk level


def test_check_when_soft_policy_violated_then_approved_with_warning():
    engine = make_engine(balance=100_000.0)
    engine.check(order(Side.BUY, 1.0, dry_run=True), NOW, True)  # day start 100000
    engine.apply_pnl(PnlSnapshot(ACCT, 88_000.0, None, None, 2))  # daily drawdown 0.12
    decision = engine.check(order(Side.BUY, 1.0), NOW + 1, True)
    assert decision.approved is True
    assert [w.policy.name for w in decision.warnings] == ["Daily Drawdown Warning"]
    assert decision.message.startswith("approved with warning: Daily Drawdown Warning")
    assert decision.risk_level is RiskLevel.HIGH  # utilization 1.2 of the soft limit


@pytest.mark.parametrize(
    ("notional", "expected"),
    [
        (30_000.0, RiskLevel.LOW),  # leverage 3 → utilization 0.3
        (49_900.0, RiskLevel.LOW),
        (50_000.0, RiskLevel.MEDIUM),
        (79_900.0, RiskLevel.MEDIUM),
        (80_000.0, RiskLevel.HIGH),
        (100_000.0, RiskLevel.HIGH),  # exactly at the leverage limit: holds
    ],
)
def test_check_when_approved_then_risk_level_from_highest_utilization(notional, expected):
    engine = make_engine(balance=10_000.0)
    decision = engine.check(order(Side.BUY, notional / 1_000.0, 1_000.0), NOW, True)
    assert decision.approved is True
    assert decision.risk_level is expected


@pytest.mark.parametrize(
    ("utilization", "expected"),
    [
        ({}, RiskLevel.LOW),
        ({"a": 0.49}, RiskLevel.LOW),
        ({"a": 0.5}, RiskLevel.MEDIUM),
        ({"a": 0.79, "b": 0.1}, RiskLevel.MEDIUM),
        ({"a": 0.1, "b": 0.8}, RiskLevel.HIGH),
        ({"a": 3.0}, RiskLevel.HIGH),
    ],
)
def test_level_from_utilization_when_highest_crosses_bands_then_level(utilization, expected):
    assert level_from_utilization(utilization) is expected


@pytest.mark.parametrize(
    ("reducing_state", "reduce_only", "expected_reason"),
    [
        (True, False, DenyReason.REDUCING_ONLY),
        (False, True, DenyReason.REDUCE_ONLY_WOULD_INCREASE),
    ],
)
def test_check_when_burst_of_reductions_would_flip_together_then_second_denied(
    reducing_state, reduce_only, expected_reason
):
    # long 1: a reserved sell of 1 already closes it; a second sell of 1 (each strictly
    # reducing alone) would open a short of 1 if both fill, which REDUCING/reduce_only forbid.
    engine = make_engine(position=(1.0, 1_000.0))
    if reducing_state:
        set_state(engine, account_key(ACCT), TradingState.REDUCING)
    first = engine.check(order(Side.SELL, 1.0, order_id="s1", reduce_only=reduce_only), NOW, True)
    second = engine.check(order(Side.SELL, 1.0, order_id="s2", reduce_only=reduce_only), NOW, True)
    assert first.approved is True
    assert (second.approved, second.reason) == (False, expected_reason)
