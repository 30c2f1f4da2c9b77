"""Issue 10 §4: the day starts from a known balance, and a late fill is not counted twice."""

from __future__ import annotations

import msgspec
import pytest

from risk_worker.domain.book import AccountBook
from risk_worker.domain.book_events import Fill, PnlSnapshot, PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.equity_window import observe_equity
from risk_worker.domain.metrics import compute_metrics
from risk_worker.domain.persistence import AccountState, export_account, restore_account
from risk_worker.domain.policies import default_policies
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.types import MS_PER_DAY, ApplyResult, Side
from risk_worker.service.trading_day import trading_day_function

ACCT = "a1"
BTC = "BTCUSDT"
NOW = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC = 17:13:20 in New York (EST, UTC−5)
HOUR_MS = 3_600_000


# 10. the day start


def test_monitor_when_positions_update_before_first_pnl_update_then_day_starts_at_balance():
    engine = RiskEngine(RiskConfig(), tick_max_jump=1.0)  # the 60 % move is applied at once
    engine.load_policies(default_policies())
    engine.set_mark(BTC, 50_000.0, NOW, NOW)
    engine.apply_position(PositionSnapshot(ACCT, BTC, 1.0, 50_000.0, NOW))
    engine.monitor(NOW)  # balance unknown: equity would read 0
    engine.apply_pnl(PnlSnapshot(ACCT, 100_000.0, None, None, NOW + 1))
    engine.monitor(NOW + 1_000)
    engine.set_mark(BTC, 20_000.0, NOW + 2_000, NOW + 2_000)  # a 30,000 loss
    [report] = engine.monitor(NOW + 2_000)
    m = report.metrics
    assert m.day_start_equity == pytest.approx(100_000.0)  # was 0
    assert m.drawdown_daily == pytest.approx(0.3)  # was 0
    assert m.daily_pnl == pytest.approx(-30_000.0)  # was +70,000
    assert m.peak_equity == pytest.approx(100_000.0)


def test_check_when_balance_unknown_then_neither_peak_nor_day_start_recorded() -> None:
    engine = RiskEngine(RiskConfig())
    engine.load_policies(default_policies())
    engine.apply_position(PositionSnapshot(ACCT, BTC, 0.0, 0.0, NOW))
    acct = engine.book.accounts[ACCT]
    observe_equity(acct, 5.0, NOW)
    assert (acct.peak_equity, acct.day_start_equity, acct.trading_day) == (None, None, None)
    engine.apply_pnl(PnlSnapshot(ACCT, 10_000.0, None, None, NOW))
    observe_equity(acct, 10_000.0, NOW)
    assert (acct.peak_equity, acct.day_start_equity) == (10_000.0, 10_000.0)


def test_apply_pnl_when_only_equity_given_then_balance_known() -> None:
    book = AccountBook()
    book.apply_pnl(PnlSnapshot(ACCT, None, 10_000.0, None, NOW))
    assert book.accounts[ACCT].balance_known is True


NEW_YORK_17 = trading_day_function("17:00 America/New_York")
RESET_MS = NOW - 13 * 60_000 - 20_000  # 17:00:00 New York on 2023-11-14


@pytest.mark.parametrize(
    ("first_ms", "second_ms", "expected_day_start"),
    [
        (RESET_MS - 1, RESET_MS, 90.0),  # 16:59:59.999 and 17:00 New York: two trading days
        (RESET_MS, RESET_MS + 6 * HOUR_MS, 100.0),  # 23:00 New York is a new UTC day only
        (RESET_MS, RESET_MS + MS_PER_DAY - 1, 100.0),
        (RESET_MS, RESET_MS + MS_PER_DAY, 90.0),  # 17:00 the next day
    ],
)
def test_observe_equity_when_day_reset_at_17_new_york_then_day_changes_at_17_only(
    first_ms: int, second_ms: int, expected_day_start: float
) -> None:
    book = AccountBook()
    book.apply_pnl(PnlSnapshot(ACCT, 90.0, None, None, 1))
    acct = book.accounts[ACCT]
    observe_equity(acct, 100.0, first_ms, NEW_YORK_17)
    observe_equity(acct, 90.0, second_ms, NEW_YORK_17)
    assert acct.day_start_equity == pytest.approx(expected_day_start)


def test_compute_metrics_when_day_reset_configured_then_day_start_of_the_trading_day() -> None:
    config = RiskConfig(trading_day=NEW_YORK_17)
    book = AccountBook()
    book.apply_pnl(PnlSnapshot(ACCT, 80.0, None, None, 1))
    acct = book.accounts[ACCT]
    observe_equity(acct, 100.0, RESET_MS + 1, config.trading_day)
    # 23:00 New York is another UTC day but the same trading day: the day start holds
    m = compute_metrics(acct, book.marks, config, RESET_MS + 6 * HOUR_MS)
    assert (m.day_start_equity, m.drawdown_daily) == (100.0, pytest.approx(0.2))
    # 17:00 the next day: a new trading day, the current equity stands in
    assert compute_metrics(acct, book.marks, config, RESET_MS + MS_PER_DAY).day_start_equity == 80.0


def test_restore_when_snapshot_carries_balance_known_then_restored_only_when_fresh() -> None:
    book = AccountBook()
    book.apply_pnl(PnlSnapshot(ACCT, 1_000.0, None, None, NOW))
    state = export_account(book.accounts[ACCT], NOW)
    assert state.balance_known is True
    fresh, old = AccountBook(), AccountBook()
    restore_account(fresh, state, NOW + 1_000, 60_000)
    restore_account(old, state, NOW + 61_000, 60_000)
    assert fresh.accounts[ACCT].balance_known is True
    assert old.accounts[ACCT].balance_known is False


def test_restore_when_snapshot_predates_balance_known_then_balance_not_known() -> None:
    book = AccountBook()
    book.apply_pnl(PnlSnapshot(ACCT, 1_000.0, None, None, NOW))
    stored = msgspec.to_builtins(export_account(book.accounts[ACCT], NOW))
    del stored["balance_known"]
    state = msgspec.convert(stored, AccountState)
    restored = AccountBook()
    restore_account(restored, state, NOW, 60_000)
    assert restored.accounts[ACCT].balance_known is False


# 11. late fills


def late_fill_book() -> AccountBook:
    """Long 2 @ 50,000 (snapshot t=1); pnl.update at t=10 already holds a fill of t=5."""
    book = AccountBook()
    book.apply_position(PositionSnapshot(ACCT, BTC, 2.0, 50_000.0, 1))
    # the fill of t=5, SELL 1 @ 60,000, fee 10: realized +10,000 − 10 is in this balance
    book.apply_pnl(PnlSnapshot(ACCT, 109_990.0, None, None, 10))
    return book


def sell(fill_id: str, ts: int) -> Fill:
    return Fill(fill_id, "o1", ACCT, BTC, Side.SELL, 1.0, 60_000.0, 10.0, ts)


@pytest.mark.parametrize("fill_ms", [5, 10])  # before, and at, the pnl.update's time
def test_apply_fill_when_fill_at_or_before_last_pnl_update_then_balance_unchanged(
    fill_ms: int,
) -> None:
    book = late_fill_book()
    assert book.apply_fill(sell("f1", fill_ms)) is ApplyResult.APPLIED
    acct = book.accounts[ACCT]
    assert acct.balance == pytest.approx(109_990.0)  # was 119,980: counted twice
    assert acct.positions[BTC].quantity == pytest.approx(1.0)  # the position still moves


def test_apply_fill_when_fill_after_last_pnl_update_then_balance_moves() -> None:
    book = late_fill_book()
    book.apply_fill(sell("f1", 11))
    assert book.accounts[ACCT].balance == pytest.approx(109_990.0 + 10_000.0 - 10.0)
