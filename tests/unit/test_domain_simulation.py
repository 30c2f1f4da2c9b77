"""The post-trade simulation: simulate_fill equals applying the fill and computing the metrics, with
reservations on both sides counted as their worst case."""

from __future__ import annotations

import pytest

from risk_worker.domain.book_events import Fill
from risk_worker.domain.equity_window import observe_equity
from risk_worker.domain.metrics import compute_metrics, simulate_fill
from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.types import Side
from tests.metrics_kit import (
    ACCT,
    CONFIG,
    NOW,
    build_book,
    metrics_of,
)

# simulate_fill ≡ apply the fill, then compute_metrics

OLD_MARK = ("DOGEUSDT", 0.1, NOW - 60_000)  # older than mark_max_age_ms
BASE_MARKS = (
    ("BTCUSDT", 110.0, NOW - 1_000),
    ("ETHUSDT", 40.0, NOW - 1_000),
    ("SOLUSDT", 20.0, NOW - 1_000),
)
BASE_POSITIONS = (("BTCUSDT", 2.0, 100.0), ("ETHUSDT", -3.0, 50.0))
UNMARKED_XRP = (*BASE_POSITIONS, ("XRPUSDT", 100.0, 0.5))

SIMULATION_CASES = {
    "open_marked_symbol": (BASE_POSITIONS, BASE_MARKS, "SOLUSDT", 5.0, 21.0),
    "increase_long": (BASE_POSITIONS, BASE_MARKS, "BTCUSDT", 1.0, 112.0),
    "reduce_long_at_profit": (BASE_POSITIONS, BASE_MARKS, "BTCUSDT", -1.0, 115.0),
    "close_long_at_loss": (BASE_POSITIONS, BASE_MARKS, "BTCUSDT", -2.0, 95.0),
    "flip_long_to_short": (BASE_POSITIONS, BASE_MARKS, "BTCUSDT", -5.0, 120.0),
    "flip_short_to_long_with_rate_override": (BASE_POSITIONS, BASE_MARKS, "ETHUSDT", 7.0, 45.0),
    "increase_short": (BASE_POSITIONS, BASE_MARKS, "ETHUSDT", -1.0, 41.0),
    "open_unmarked_symbol": (BASE_POSITIONS, BASE_MARKS, "ADAUSDT", 10.0, 2.0),
    "increase_unmarked_position": (UNMARKED_XRP, BASE_MARKS, "XRPUSDT", 100.0, 0.7),
    "close_unmarked_position": (UNMARKED_XRP, BASE_MARKS, "XRPUSDT", -100.0, 0.6),
    "open_symbol_with_old_mark": (BASE_POSITIONS, (*BASE_MARKS, OLD_MARK), "DOGEUSDT", 1e4, 0.1),
}


ONE_PENDING = (PendingOrder("o9", "BTCUSDT", 1.0, 1.0, 100.0, 0.1, NOW + 60_000),)
PENDING_BOTH_SIDES = (
    *ONE_PENDING,
    PendingOrder("o8", "BTCUSDT", -4.0, 2.0, 105.0, 0.1, NOW + 60_000),
    PendingOrder("o7", "ETHUSDT", -2.0, 2.0, 40.0, 0.2, NOW + 60_000),
    PendingOrder("o6", "SOLUSDT", -1.0, 1.0, 20.0, 0.1, NOW + 60_000),  # reserved only
    PendingOrder("o5", "ADAUSDT", 30.0, 30.0, 2.5, 0.1, NOW + 60_000),  # reserved, no mark
    PendingOrder("o4", "ADAUSDT", 10.0, 10.0, 3.0, 0.1, NOW + 60_000),
    PendingOrder("o3", "XRPUSDT", 50.0, 50.0, 0.6, 0.1, NOW + 60_000),
)


def simulated_and_actual(positions, marks, symbol, signed_qty, price, pending=ONE_PENDING):

    sim_book = build_book(positions=positions, marks=marks, pending=pending)
    sim_account = sim_book.accounts[ACCT]
    pre = compute_metrics(sim_account, sim_book.marks, CONFIG, NOW, exclude_order="checked")
    observe_equity(sim_account, pre.equity, NOW)
    simulated = simulate_fill(
        pre, sim_account, sim_book.marks, CONFIG, symbol, signed_qty, price, NOW, "checked"
    )

    real_book = build_book(positions=positions, marks=marks, pending=pending)
    real_account = real_book.accounts[ACCT]
    observe_equity(
        real_account, compute_metrics(real_account, real_book.marks, CONFIG, NOW).equity, NOW
    )
    side = Side.BUY if signed_qty > 0 else Side.SELL
    fill = Fill("f1", "", ACCT, symbol, side, abs(signed_qty), price, 0.0, NOW)
    real_book.apply_fill(fill)
    actual = compute_metrics(real_account, real_book.marks, CONFIG, NOW)
    return simulated, actual


@pytest.mark.parametrize(
    ("positions", "marks", "symbol", "signed_qty", "price"),
    list(SIMULATION_CASES.values()),
    ids=list(SIMULATION_CASES),
)
def test_simulate_fill_when_compared_with_applying_the_fill_then_every_number_matches(
    positions, marks, symbol, signed_qty, price
):
    simulated, actual = simulated_and_actual(positions, marks, symbol, signed_qty, price)
    for field in (
        "equity",
        "balance",
        "unrealized_pnl",
        "gross_exposure",
        "net_exposure",
        "position_margin",
        "pending_notional",
        "pending_margin",
        "peak_equity",
        "day_start_equity",
        "margin_ratio",
        "leverage",
        "drawdown_max",
        "daily_pnl",
    ):
        assert getattr(simulated, field) == pytest.approx(getattr(actual, field), abs=1e-9), field
    assert simulated.position_notional == pytest.approx(actual.position_notional)
    assert simulated.open_positions == actual.open_positions
    assert simulated.pending_orders == actual.pending_orders


@pytest.mark.parametrize(
    ("positions", "marks", "symbol", "signed_qty", "price"),
    list(SIMULATION_CASES.values()),
    ids=list(SIMULATION_CASES),
)
def test_simulate_fill_when_compared_with_applying_the_fill_then_stale_marks_matches(
    positions, marks, symbol, signed_qty, price
):
    simulated, actual = simulated_and_actual(positions, marks, symbol, signed_qty, price)
    assert simulated.stale_marks is actual.stale_marks


@pytest.mark.parametrize(
    ("positions", "marks", "symbol", "signed_qty", "price"),
    list(SIMULATION_CASES.values()),
    ids=list(SIMULATION_CASES),
)
def test_simulate_fill_when_reservations_on_both_sides_then_same_as_applying_the_fill(
    positions, marks, symbol, signed_qty, price
):
    # the order being checked has a reservation of its own from an earlier check: left out
    checked = PendingOrder("checked", symbol, 99.0, 99.0, 1e6, 0.1, NOW + 60_000)
    pending = (*PENDING_BOTH_SIDES, checked)
    simulated, actual = simulated_and_actual(
        positions, marks, symbol, signed_qty, price, PENDING_BOTH_SIDES
    )
    with_checked, _ = simulated_and_actual(positions, marks, symbol, signed_qty, price, pending)
    for m in (simulated, with_checked):
        for field in (
            "equity",
            "gross_exposure",
            "net_exposure",
            "net_exposure_low",
            "position_margin",
            "margin_ratio",
            "leverage",
        ):
            assert getattr(m, field) == pytest.approx(getattr(actual, field), abs=1e-9), field
        assert m.position_notional == pytest.approx(actual.position_notional)
        assert m.open_positions == actual.open_positions
        assert sorted(m.stale_symbols) == sorted(actual.stale_symbols)


def test_compute_metrics_when_reservations_on_both_sides_then_each_side_worst_case():
    # BTC long 2, mark 110: pending BUY 1 and SELL 4 → high 3 × 110 = 330, low -2 × 110 = -220
    # ETH short 3, mark 40: pending SELL 2 → high -120, low -200 (margin rate 20 %)
    # SOL reserved only, mark 20: SELL 1 → high 0, low -20
    # ADA reserved only, no mark: BUY 40 valued at the highest reservation price 3 → 120
    # XRP reserved only, no mark: BUY 50 @ 0.6 → 30
    m = metrics_of(build_book(marks=BASE_MARKS, pending=PENDING_BOTH_SIDES))
    assert m.position_notional == pytest.approx(
        {"BTCUSDT": 330.0, "ETHUSDT": 200.0, "SOLUSDT": 20.0, "ADAUSDT": 120.0, "XRPUSDT": 30.0}
    )
    assert m.gross_exposure == pytest.approx(700.0)
    assert m.net_exposure == pytest.approx(330.0 - 120.0 + 0.0 + 120.0 + 30.0)
    assert m.net_exposure_low == pytest.approx(-220.0 - 200.0 - 20.0 + 0.0 + 0.0)
    assert m.position_margin == pytest.approx(33.0 + 40.0 + 2.0 + 12.0 + 3.0)
    assert m.open_positions == 5
    assert sorted(m.stale_symbols) == ["ADAUSDT", "XRPUSDT"]
    assert m.unrealized_pnl == pytest.approx(50.0)  # held positions only


def test_simulate_fill_when_flip_then_hand_computed_post_trade_metrics():
    # BTC long 2 @ 100 (mark 110), sell 5 @ 120: realized +40, short 3 @ 120 valued at 110
    # → upnl BTC = -3 × (110 - 120) = 30; ETH upnl 30 → equity = 10040 + 60 = 10100
    simulated, _ = simulated_and_actual(BASE_POSITIONS, BASE_MARKS, "BTCUSDT", -5.0, 120.0)
    assert simulated.balance == pytest.approx(10_040.0)
    assert simulated.unrealized_pnl == pytest.approx(60.0)
    assert simulated.equity == pytest.approx(10_100.0)
    # with the pending BUY 1 of BTC: high (-3 + 1) × 110 = -220, low -330 → notional 330
    assert simulated.gross_exposure == pytest.approx(330.0 + 120.0)
    assert simulated.net_exposure == pytest.approx(-220.0 - 120.0)
    assert simulated.net_exposure_low == pytest.approx(-330.0 - 120.0)
    assert simulated.position_margin == pytest.approx(33.0 + 24.0)
