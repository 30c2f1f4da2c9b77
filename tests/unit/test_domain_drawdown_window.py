"""Rapid drawdown: the bounded sliding-window peak and ``drawdown_window`` (issue 13, item 3)."""

from __future__ import annotations

import random

import pytest

from risk_worker.domain.book import Account
from risk_worker.domain.book_events import PnlSnapshot
from risk_worker.domain.equity_window import observe_equity, window_peak
from risk_worker.domain.metrics import compute_metrics
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.types import Side
from risk_worker.domain.window_max import EquityWindow
from tests.decision_kit import ACCT, NOW, make_engine, order

WINDOW_MS = 300_000
SECOND = 1_000


def test_window_peak_when_random_walk_then_equals_brute_force_max_of_the_window() -> None:
    rng = random.Random(13)
    window = EquityWindow(WINDOW_MS)
    seen: list[tuple[int, float]] = []
    now = NOW
    for _ in range(5_000):
        now += rng.choice((0, 1, 250, SECOND, 7 * SECOND, 60 * SECOND))
        equity = 100_000.0 + rng.uniform(-5_000.0, 5_000.0)
        window.observe(now, equity)
        seen.append((now, equity))
        brute = max(e for t, e in seen if t > now - WINDOW_MS)
        peak = window.peak(now)
        # exact, or higher by an equity of the same second kept a little longer (conservative)
        recent = max(e for t, e in seen if t > now - WINDOW_MS - SECOND)
        assert peak is not None and brute <= peak <= recent


def test_window_when_a_long_fall_observed_every_millisecond_then_one_entry_per_second() -> None:
    window = EquityWindow(WINDOW_MS)
    for i in range(600_000):  # ten minutes of a steady fall, one observation a millisecond
        window.observe(NOW + i, 1_000_000.0 - i)
    assert len(window) <= WINDOW_MS // SECOND + 1


def test_window_peak_when_older_than_the_window_then_forgotten() -> None:
    window = EquityWindow(WINDOW_MS)
    window.observe(NOW, 110.0)
    window.observe(NOW + 10 * SECOND, 100.0)
    assert window.peak(NOW + WINDOW_MS - 1) == 110.0
    assert window.peak(NOW + WINDOW_MS) == 100.0
    assert window.peak(NOW + 10 * SECOND + WINDOW_MS) is None


def test_equity_window_when_not_positive_then_value_error() -> None:
    with pytest.raises(ValueError, match="positive"):
        EquityWindow(0)


def test_observe_equity_when_balance_unknown_then_no_window() -> None:
    acct = Account(ACCT)
    observe_equity(acct, 100.0, NOW)
    assert window_peak(acct, NOW) is None


def test_drawdown_window_when_fall_inside_window_then_measured_and_forgotten_after_it() -> None:
    config = RiskConfig(drawdown_window_ms=WINDOW_MS)
    acct = Account(ACCT)
    acct.known = acct.balance_known = True
    acct.balance = 100_000.0
    observe_equity(acct, 100_000.0, NOW, config.trading_day, WINDOW_MS)
    acct.balance = 94_000.0
    m = compute_metrics(acct, {}, config, NOW + 60 * SECOND)
    assert (m.window_peak_equity, m.drawdown_window) == (100_000.0, pytest.approx(0.06))
    observe_equity(acct, m.equity, NOW + 60 * SECOND, config.trading_day, WINDOW_MS)
    later = compute_metrics(acct, {}, config, NOW + WINDOW_MS + SECOND)
    assert (later.drawdown_window, later.drawdown_max) == (0.0, pytest.approx(0.06))


def test_check_when_equity_fell_6_percent_within_the_window_then_rapid_drawdown_warning() -> None:
    engine = make_engine(balance=100_000.0, mark=1_000.0)
    engine.check(order(Side.BUY, 1.0, dry_run=True), NOW, True)  # window peak 100000
    engine.apply_pnl(PnlSnapshot(ACCT, 94_000.0, None, None, 2))
    decision = engine.check(order(Side.BUY, 1.0), NOW + 60 * SECOND, True)
    assert decision.approved is True
    assert "Rapid Drawdown Warning" in [w.policy.name for w in decision.warnings]
    assert decision.metrics is not None
    assert decision.metrics.drawdown_window == pytest.approx(0.06)


def test_check_when_the_fall_is_older_than_the_window_then_no_rapid_drawdown_warning() -> None:
    engine = make_engine(balance=100_000.0, mark=1_000.0)
    engine.check(order(Side.BUY, 1.0, dry_run=True), NOW, True)
    engine.apply_pnl(PnlSnapshot(ACCT, 94_000.0, None, None, 2))
    engine.set_mark("BTCUSDT", 1_000.0, NOW + WINDOW_MS + SECOND, NOW + WINDOW_MS + SECOND)
    decision = engine.check(order(Side.BUY, 1.0, order_id="o2"), NOW + WINDOW_MS + SECOND, True)
    assert decision.approved is True
    assert "Rapid Drawdown Warning" not in [w.policy.name for w in decision.warnings]
