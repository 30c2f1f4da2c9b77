"""Account metrics: every formula by hand, stale marks, equity tracking, simulate_fill."""

from __future__ import annotations

import math

import pytest

from risk_worker.domain.book import AccountBook, Fill, PnlSnapshot, PositionSnapshot
from risk_worker.domain.metrics import (
    AccountMetrics,
    RiskConfig,
    compute_metrics,
    observe_equity,
    simulate_fill,
)
from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.types import MS_PER_DAY, Side

ACCT = "acct-1"
NOW = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
DAY_START_MS = NOW - NOW % MS_PER_DAY
CONFIG = RiskConfig(margin_rates={"ETHUSDT": 0.2})


def build_book(
    balance: float = 10_000.0,
    positions: tuple[tuple[str, float, float], ...] = (
        ("BTCUSDT", 2.0, 100.0),
        ("ETHUSDT", -3.0, 50.0),
    ),
    marks: tuple[tuple[str, float, int], ...] = (
        ("BTCUSDT", 110.0, NOW - 1_000),
        ("ETHUSDT", 40.0, NOW - 1_000),
    ),
    pending: tuple[PendingOrder, ...] = (),
) -> AccountBook:
    book = AccountBook()
    book.apply_pnl(PnlSnapshot(ACCT, balance, None, None, 1))
    for symbol, qty, entry in positions:
        book.apply_position(PositionSnapshot(ACCT, symbol, qty, entry, 1))
    for symbol, price, received in marks:
        book.set_mark(symbol, price, timestamp=received, now_ms=received)
    for order in pending:
        book.accounts[ACCT].pending.add(order)
    return book


def metrics_of(book: AccountBook, config: RiskConfig = CONFIG, now: int = NOW) -> AccountMetrics:
    return compute_metrics(book.accounts[ACCT], book.marks, config, now)


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
