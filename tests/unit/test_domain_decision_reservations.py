"""The pre-trade check: reservations, the reducing exemption, soft policies and risk level."""

from __future__ import annotations

import pytest

from risk_worker.domain.book_events import PnlSnapshot, PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import level_from_utilization
from risk_worker.domain.trading_state import account_key
from risk_worker.domain.types import (
    DenyReason,
    RiskLevel,
    Side,
    TradingState,
)
from tests.decision_kit import (
    ACCT,
    BTC,
    NOW,
    POST_TRADE,
    fill,
    make_engine,
    order,
    set_state,
)

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
    assert [w.policy.name for w in decision.warnings] == [  # 12 % within 1 ms: rapid too
        "Daily Drawdown Warning",
        "Rapid Drawdown Warning",
    ]
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
