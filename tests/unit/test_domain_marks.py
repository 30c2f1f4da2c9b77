"""The mark table's gate: suspect ticks held until confirmed, and a bounded symbol count."""

from __future__ import annotations

import pytest

from risk_worker.domain.book_events import PnlSnapshot, PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.policies import default_policies
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.types import TickResult, TradingState

T0 = 1_700_000_000_000
ETH = "ETHUSDT"
MAX_AGE = 30_000


def engine(**kwargs: int) -> RiskEngine:
    e = RiskEngine(RiskConfig(mark_max_age_ms=MAX_AGE), alert_dedup_window_ms=60_000, **kwargs)
    e.load_policies(default_policies())
    return e


def mark(e: RiskEngine, symbol: str = ETH) -> float:
    return e.book.marks[symbol].price


def test_set_mark_when_jump_beyond_max_then_held_until_three_confirmations() -> None:
    e = engine()
    assert e.set_mark(ETH, 3_000.0, T0, T0) is TickResult.APPLIED
    assert e.set_mark(ETH, 1e9, T0, T0 + 1) is TickResult.SUSPECT_ALERT
    assert mark(e) == 3_000.0
    assert e.set_mark(ETH, 1.1e9, T0, T0 + 2) is TickResult.SUSPECT
    assert e.set_mark(ETH, 0.9e9, T0, T0 + 3) is TickResult.SUSPECT
    assert mark(e) == 3_000.0
    assert e.set_mark(ETH, 1e9, T0, T0 + 4) is TickResult.CONFIRMED
    assert mark(e) == 1e9
    assert e.book.marks[ETH].received_ms == T0 + 4


def test_set_mark_when_jump_within_max_then_applied() -> None:
    e = engine()
    e.set_mark(ETH, 3_000.0, T0, T0)
    assert e.set_mark(ETH, 3_750.0, T0, T0 + 1) is TickResult.APPLIED  # +25 % exactly
    assert e.set_mark(ETH, 2_812.5, T0, T0 + 2) is TickResult.APPLIED  # −25 % exactly
    assert mark(e) == 2_812.5


def test_set_mark_when_tick_back_near_the_mark_then_suspect_cancelled() -> None:
    e = engine()
    e.set_mark(ETH, 3_000.0, T0, T0)
    e.set_mark(ETH, 500.0, T0, T0 + 1)
    e.set_mark(ETH, 500.0, T0, T0 + 2)
    assert e.set_mark(ETH, 3_010.0, T0, T0 + 3) is TickResult.APPLIED
    assert e.marks.suspect_level(ETH) is None
    assert e.set_mark(ETH, 500.0, T0, T0 + 4) is TickResult.SUSPECT  # starts over, alert spent
    assert e.set_mark(ETH, 500.0, T0, T0 + 5) is TickResult.SUSPECT
    assert mark(e) == 3_010.0


def test_set_mark_when_tick_far_from_mark_and_suspect_then_a_new_suspect_level() -> None:
    e = engine()
    e.set_mark(ETH, 3_000.0, T0, T0)
    e.set_mark(ETH, 500.0, T0, T0 + 1)
    e.set_mark(ETH, 500.0, T0, T0 + 2)
    e.set_mark(ETH, 9_000.0, T0, T0 + 3)
    assert e.marks.suspect_level(ETH) == 9_000.0
    e.set_mark(ETH, 500.0, T0, T0 + 4)  # would have been the third confirmation of 500
    assert mark(e) == 3_000.0


def test_set_mark_when_mark_stale_or_absent_then_applied_directly() -> None:
    e = engine()
    assert e.set_mark(ETH, 1e12, T0, T0) is TickResult.APPLIED  # no mark: bounded, applied
    e.set_mark(ETH, 1.0, T0, T0 + 1)  # held
    assert e.set_mark(ETH, 1.0, T0, T0 + MAX_AGE + 1) is TickResult.APPLIED  # mark now stale
    assert mark(e) == 1.0
    assert e.marks.suspect_level(ETH) is None


def test_set_mark_when_suspects_repeat_then_one_alert_per_symbol_per_window() -> None:
    e = engine()
    e.set_mark(ETH, 3_000.0, T0, T0)
    e.set_mark("BTCUSDT", 50_000.0, T0, T0)
    assert e.set_mark(ETH, 1e9, T0, T0 + 1) is TickResult.SUSPECT_ALERT
    e.set_mark(ETH, 3_000.0, T0, T0 + 2)
    assert e.set_mark(ETH, 1e9, T0, T0 + 3) is TickResult.SUSPECT  # within the window
    assert e.set_mark("BTCUSDT", 1.0, T0, T0 + 4) is TickResult.SUSPECT_ALERT  # its own
    e.set_mark(ETH, 3_000.0, T0, T0 + 60_001)
    assert e.set_mark(ETH, 1e9, T0, T0 + 60_002) is TickResult.SUSPECT_ALERT


def test_set_mark_when_confirmations_is_one_then_the_next_tick_applies() -> None:
    e = engine(tick_confirmations=1)
    e.set_mark(ETH, 3_000.0, T0, T0)
    e.set_mark(ETH, 6_000.0, T0, T0 + 1)
    assert e.set_mark(ETH, 6_000.0, T0, T0 + 2) is TickResult.CONFIRMED


def test_set_mark_when_symbol_table_full_then_new_symbols_refused_held_ones_move() -> None:
    e = engine(max_symbols=2)
    e.set_mark("A", 1.0, T0, T0)
    e.set_mark("B", 1.0, T0, T0)
    assert e.set_mark("C", 1.0, T0, T0) is TickResult.SYMBOL_LIMIT
    assert "C" not in e.book.marks
    assert e.set_mark("A", 1.1, T0, T0 + 1) is TickResult.APPLIED
    assert len(e.book.marks) == 2


@pytest.mark.parametrize("wild", [1e9, 1e-12, 1e12])
def test_monitor_when_a_wild_tick_is_unconfirmed_then_no_trip_and_peak_unchanged(
    wild: float,
) -> None:
    e = engine()
    e.apply_pnl(PnlSnapshot("a", 100_000.0, None, None, T0))
    e.apply_position(PositionSnapshot("a", ETH, 10.0, 3_000.0, T0))
    e.set_mark(ETH, 3_000.0, T0, T0)
    e.monitor(T0)
    e.set_mark(ETH, wild, T0, T0 + 1)
    for i in range(10):
        reports = e.monitor(T0 + 2 + i)
        assert reports[0].trip is None
    e.set_mark(ETH, 3_000.0, T0, T0 + 20)
    assert e.book.accounts["a"].peak_equity == 100_000.0
    assert e.states.effective("a").state is TradingState.ACTIVE


def test_mark_table_when_parameters_out_of_range_then_value_error() -> None:
    with pytest.raises(ValueError, match="max_jump"):
        engine(tick_confirmations=0)
