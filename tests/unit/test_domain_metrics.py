"""Account metrics: every formula by hand, stale marks, equity tracking (peaks and day starts)."""

from __future__ import annotations

import math

import pytest

from risk_worker.domain.equity_window import observe_equity
from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.types import MS_PER_DAY
from tests.metrics_kit import (
    ACCT,
    DAY_START_MS,
    NOW,
    build_book,
    metrics_of,
)


def test_compute_metrics_when_two_positions_and_a_reservation_then_every_formula_holds():
    # BTC long 2 @ 100, mark 110: value 220, upnl 20
    # ETH short 3 @ 50, mark 40: value -120, upnl 30, margin rate 20 % (override)
    # pending BTC buy 1 @ 100, rate 10 %: its own notional 100, margin 10 (for information).
    # Worst case of BTC: high = (2 + 1) × 110 = 330, low = 2 × 110 = 220 → notional 330,
    # margin 33; ETH: 120, margin 24.
    order = PendingOrder("o1", "BTCUSDT", 1.0, 1.0, 100.0, 0.1, NOW + 60_000)
    m = metrics_of(build_book(pending=(order,)))
    assert m.balance == pytest.approx(10_000.0)
    assert m.unrealized_pnl == pytest.approx(50.0)
    assert m.equity == pytest.approx(10_050.0)
    assert m.gross_exposure == pytest.approx(450.0)
    assert m.net_exposure == pytest.approx(210.0)
    assert m.net_exposure_low == pytest.approx(100.0)
    assert m.position_margin == pytest.approx(57.0)
    assert m.pending_notional == pytest.approx(100.0)
    assert m.pending_margin == pytest.approx(10.0)
    assert m.margin_used == pytest.approx(57.0)  # the reservation counted once
    assert m.available_margin == pytest.approx(9_993.0)
    assert m.margin_ratio == pytest.approx(10_050.0 / 57.0)
    assert m.leverage == pytest.approx(450.0 / 10_050.0)
    assert m.concentration("BTCUSDT") == pytest.approx(330.0 / 10_050.0)
    assert m.concentration("ETHUSDT") == pytest.approx(120.0 / 10_050.0)
    assert m.concentration() == pytest.approx(330.0 / 10_050.0)
    assert m.concentration("SOLUSDT") == 0.0
    assert m.concentrations() == pytest.approx(
        {"BTCUSDT": 330.0 / 10_050.0, "ETHUSDT": 120.0 / 10_050.0}
    )
    assert m.position_notional == pytest.approx({"BTCUSDT": 330.0, "ETHUSDT": 120.0})
    assert m.open_positions == 2
    assert m.pending_orders == 1
    assert m.stale_marks is False


@pytest.mark.parametrize(
    ("margin_rates", "default_rate", "expected_margin"),
    [
        ({}, 0.10, 34.0),  # 340 × 0.10
        ({"ETHUSDT": 0.2}, 0.10, 46.0),  # 22 + 120 × 0.2
        ({"BTCUSDT": 0.5, "ETHUSDT": 0.25}, 0.10, 140.0),  # 110 + 30
        ({}, 0.05, 17.0),
    ],
)
def test_compute_metrics_when_margin_rate_overridden_then_symbol_uses_its_rate(
    margin_rates, default_rate, expected_margin
):
    config = RiskConfig(default_margin_rate=default_rate, margin_rates=margin_rates)
    assert metrics_of(build_book(), config).position_margin == pytest.approx(expected_margin)


@pytest.mark.parametrize(
    ("marks", "expected_stale", "expected_unrealized", "expected_gross"),
    [
        # both fresh
        ((("BTCUSDT", 110.0, NOW - 1_000), ("ETHUSDT", 40.0, NOW - 1_000)), False, 50.0, 340.0),
        # ETH without a mark: valued at entry 50 → upnl 0, notional 150
        ((("BTCUSDT", 110.0, NOW - 1_000),), True, 20.0, 370.0),
        # no marks at all: everything at entry
        ((), True, 0.0, 350.0),
        # ETH mark exactly at max age: still fresh
        ((("BTCUSDT", 110.0, NOW), ("ETHUSDT", 40.0, NOW - 30_000)), False, 50.0, 340.0),
        # ETH mark 1 ms older than max age: stale, but its price is still used
        ((("BTCUSDT", 110.0, NOW), ("ETHUSDT", 40.0, NOW - 30_001)), True, 50.0, 340.0),
    ],
)
def test_compute_metrics_when_marks_missing_or_old_then_flags_stale_marks(
    marks, expected_stale, expected_unrealized, expected_gross
):
    m = metrics_of(build_book(marks=marks))
    assert m.stale_marks is expected_stale
    assert m.unrealized_pnl == pytest.approx(expected_unrealized)
    assert m.gross_exposure == pytest.approx(expected_gross)


def test_compute_metrics_when_flat_position_then_ignored():
    book = build_book(positions=(("BTCUSDT", 0.0, 0.0),), marks=())
    m = metrics_of(book)
    assert m.open_positions == 0
    assert m.position_notional == {}
    assert m.stale_marks is False


def test_compute_metrics_when_no_margin_used_then_margin_ratio_infinite_and_leverage_zero():
    m = metrics_of(build_book(positions=(), marks=()))
    assert m.margin_used == 0.0
    assert m.margin_ratio == math.inf
    assert m.leverage == 0.0
    assert m.available_margin == pytest.approx(10_000.0)


@pytest.mark.parametrize("balance", [0.0, -10.0])
def test_compute_metrics_when_equity_not_positive_with_exposure_then_leverage_infinite(balance):
    # positions valued at entry (no marks): unrealized 0, equity = balance
    m = metrics_of(build_book(balance=balance, marks=()))
    assert m.equity == pytest.approx(balance)
    assert m.leverage == math.inf
    assert m.concentration("BTCUSDT") == math.inf


@pytest.mark.parametrize(
    ("now_ms", "expected_count"),
    [(NOW + 59_999, 1), (NOW + 60_000, 0)],
)
def test_compute_metrics_when_reservation_ttl_passes_then_it_lapses(now_ms, expected_count):
    order = PendingOrder("o1", "BTCUSDT", 1.0, 1.0, 100.0, 0.1, NOW + 60_000)
    m = metrics_of(build_book(positions=(), marks=(), pending=(order,)), now=now_ms)
    assert m.pending_orders == expected_count
    assert m.pending_notional == pytest.approx(100.0 * expected_count)


# peak, day start, drawdowns


@pytest.mark.parametrize(
    ("observations", "expected_peak", "expected_day_start"),
    [
        ([(DAY_START_MS + 1, 100.0)], 100.0, 100.0),
        ([(DAY_START_MS + 1, 100.0), (DAY_START_MS + 2, 120.0)], 120.0, 100.0),
        ([(DAY_START_MS + 1, 100.0), (DAY_START_MS + 2, 80.0)], 100.0, 100.0),
        # last millisecond of the day: same day
        ([(DAY_START_MS + 1, 100.0), (DAY_START_MS + MS_PER_DAY - 1, 90.0)], 100.0, 100.0),
        # 00:00 UTC next day: the day start resets, the peak does not
        ([(DAY_START_MS + 1, 100.0), (DAY_START_MS + MS_PER_DAY, 90.0)], 100.0, 90.0),
        (
            [
                (DAY_START_MS + 1, 100.0),
                (DAY_START_MS + MS_PER_DAY, 90.0),
                (DAY_START_MS + MS_PER_DAY + 5, 95.0),
            ],
            100.0,
            90.0,
        ),
    ],
)
def test_observe_equity_when_sequence_then_tracks_peak_and_utc_day_start(
    observations, expected_peak, expected_day_start
):
    account = build_book().accounts[ACCT]
    for ts, equity in observations:
        observe_equity(account, equity, ts)
    assert account.peak_equity == pytest.approx(expected_peak)
    assert account.day_start_equity == pytest.approx(expected_day_start)


@pytest.mark.parametrize(
    ("peak", "day_start", "balance", "dd_max", "dd_daily", "daily_pnl"),
    [
        (120.0, 100.0, 80.0, 40.0 / 120.0, 0.2, -20.0),
        (120.0, 100.0, 110.0, 10.0 / 120.0, 0.0, 10.0),  # above day start: no daily dd
        (100.0, 100.0, 100.0, 0.0, 0.0, 0.0),
    ],
)
def test_compute_metrics_when_peak_and_day_start_observed_then_drawdowns_and_daily_pnl(
    peak, day_start, balance, dd_max, dd_daily, daily_pnl
):
    book = build_book(balance=balance, positions=(), marks=())
    account = book.accounts[ACCT]
    observe_equity(account, peak, DAY_START_MS + 1)
    account.day_start_equity = day_start  # same UTC day as the peak
    m = metrics_of(book, now=DAY_START_MS + 2)
    assert m.peak_equity == pytest.approx(peak)
    assert m.day_start_equity == pytest.approx(day_start)
    assert m.drawdown_max == pytest.approx(dd_max)
    assert m.drawdown_daily == pytest.approx(dd_daily)
    assert m.daily_pnl == pytest.approx(daily_pnl)


def test_compute_metrics_when_day_start_from_earlier_utc_day_then_current_equity_stands_in():
    book = build_book(balance=80.0, positions=(), marks=())
    account = book.accounts[ACCT]
    observe_equity(account, 100.0, DAY_START_MS + 1)
    m = metrics_of(book, now=DAY_START_MS + MS_PER_DAY)
    assert m.day_start_equity == pytest.approx(80.0)
    assert m.drawdown_daily == 0.0
    assert m.peak_equity == pytest.approx(100.0)
    assert m.drawdown_max == pytest.approx(0.2)


def test_compute_metrics_when_never_observed_then_peak_is_current_equity():
    m = metrics_of(build_book(positions=(), marks=()))
    assert m.peak_equity == pytest.approx(10_000.0)
    assert m.day_start_equity == pytest.approx(10_000.0)
    assert m.drawdown_max == 0.0
