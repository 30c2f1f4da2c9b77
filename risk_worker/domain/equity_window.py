"""Equity observations: the high-water mark, the day start and the windowed peak.

The monitor (each pass) and the check path (each check) observe an account's equity here.
Three references come out of it, each behind a drawdown (fractions, see
:mod:`~risk_worker.domain.metrics`):

- the peak, the highest equity ever observed (``drawdown_max``);
- the day start, the first equity of the trading day (``drawdown_daily``);
- the window peak, the highest equity observed within the last ``RISK_DRAWDOWN_WINDOW``
  seconds (``drawdown_window``, the rapid-drawdown breaker of trade2026's configuration:
  5 % in 300 s): drawdown_window = max(0, (window peak − equity) / window peak).

The window peak is kept in a bounded monotonic deque
(:class:`~risk_worker.domain.window_max.EquityWindow`, O(1) amortized per observation).
"""

from __future__ import annotations

from collections.abc import Callable

from risk_worker.domain.book import Account
from risk_worker.domain.bounds import is_equity
from risk_worker.domain.risk_config import trading_day_of
from risk_worker.domain.types import utc_day
from risk_worker.domain.window_max import EquityWindow


def observe_equity(
    account: Account,
    equity: float,
    now_ms: int,
    trading_day: Callable[[int], int] = utc_day,
    window_ms: int = 300_000,
) -> None:
    """Track the high-water mark, the day-start equity and the window peak, once the balance
    is known.

    Nothing is observed while the account's balance is unknown (no ``pnl.update`` yet): its
    equity would be the unrealized PnL alone. Then the first observation sets both; the first
    observation of a new trading day (``trading_day(now_ms)``, see
    :class:`~risk_worker.domain.metrics.RiskConfig`) sets the day start. A non-finite (or
    beyond ``EQUITY_MAX``) equity is not recorded: an infinite peak would turn
    ``drawdown_max`` off for good. ``window_ms`` is the window of ``drawdown_window`` (ms;
    ``RISK_DRAWDOWN_WINDOW``); a change of it starts the window afresh.
    """
    if not account.balance_known or not is_equity(equity):
        return
    if account.peak_equity is None or equity > account.peak_equity:
        account.peak_equity = equity
    day = trading_day_of(trading_day, now_ms)
    if account.trading_day != day or account.day_start_equity is None:
        account.trading_day = day
        account.day_start_equity = equity
    window = account.equity_window
    if window is None or window.window_ms != window_ms:
        window = account.equity_window = EquityWindow(window_ms)
    window.observe(now_ms, equity)


def window_peak(account: Account, now_ms: int) -> float | None:
    """The account's highest equity within its drawdown window (quote), None when none was
    observed in it."""
    window = account.equity_window
    return None if window is None else window.peak(now_ms)
