"""Per-strategy books: what one strategy holds and has earned within one account.

``positions.update`` and ``fills.confirmed`` may name a ``strategy_id`` (issue 13). The account's
book stays as it is (a fill moves the account's position and balance whether it names a strategy
or not); a fill that names a strategy also moves that strategy's position and realized PnL, and a
``positions.update`` that names one replaces that strategy's position only — the account's
position is what the account's own snapshots and fills say, never a sum of strategies. Such a
snapshot therefore does not make the account *known* either: only the account's own
``pnl.update`` or ``positions.update`` does (fail closed).

A strategy has no capital of its own. Its PnL is cumulative: realized PnL of its fills − their
fees + unrealized PnL of its positions (quote). Its references, observed by the monitor and the
checks once the account's balance is known (:func:`observe_strategy`):

- peak PnL: the highest PnL observed, starting at 0 (a strategy starts flat), with the account's
  equity when it was set (``equity_at_peak``);
- day start: the strategy's PnL and the account's equity at the first observation of the trading
  day.

So ``drawdown_max`` = (peak PnL − PnL) / equity at peak and ``drawdown_daily`` =
max(0, (day-start PnL − PnL) / day-start equity) (fractions of the account's capital), and
``daily_pnl`` = PnL − day-start PnL (:mod:`~risk_worker.domain.strategy_metrics`).

An account holds at most :data:`STRATEGIES_MAX` strategy books: an event for a new strategy
beyond it is ``strategy_limit`` (the account's part of a fill is still applied).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from risk_worker.domain.bounds import is_equity
from risk_worker.domain.positions import Position, fill_effect
from risk_worker.domain.risk_config import trading_day_of

STRATEGIES_MAX: Final = 1_000
"""Strategy books kept per account (a bound on memory against a flood of invented ids)."""


class StrategyBook:
    """One strategy's positions, realized PnL and drawdown references within one account.

    Attributes:
        strategy_id: identifier.
        positions: symbol → the strategy's position (signed base quantity, entry in quote).
        realized_pnl: Σ realized PnL of the strategy's fills, before fees (quote).
        fees: Σ fees of the strategy's fills (quote, debited).
        peak_pnl: highest PnL observed (quote, ≥ 0); None until first observed.
        equity_at_peak: the account's equity when ``peak_pnl`` was set (quote).
        day_start_pnl / day_start_equity: the strategy's PnL and the account's equity at the
            first observation of ``trading_day`` (quote); None until observed.
        trading_day: the trading day (``RiskConfig.trading_day``) of the day start.
        emergency_breached / emergency_onset_ms: the monitor's emergency-breach tracking, as
            for accounts (:mod:`~risk_worker.domain.monitor`).
    """

    __slots__ = (
        "day_start_equity",
        "day_start_pnl",
        "emergency_breached",
        "emergency_onset_ms",
        "equity_at_peak",
        "fees",
        "peak_pnl",
        "positions",
        "realized_pnl",
        "strategy_id",
        "trading_day",
    )

    def __init__(self, strategy_id: str) -> None:
        self.strategy_id = strategy_id
        self.positions: dict[str, Position] = {}
        self.realized_pnl = 0.0
        self.fees = 0.0
        self.peak_pnl: float | None = None
        self.equity_at_peak = 0.0
        self.day_start_pnl: float | None = None
        self.day_start_equity = 0.0
        self.trading_day: int | None = None
        self.emergency_breached = False
        self.emergency_onset_ms = 0


def strategy_book(strategies: dict[str, StrategyBook], strategy_id: str) -> StrategyBook | None:
    """The strategy's book, created when first referenced; None when the account already holds
    :data:`STRATEGIES_MAX` others."""
    book = strategies.get(strategy_id)
    if book is None:
        if len(strategies) >= STRATEGIES_MAX:
            return None
        book = strategies[strategy_id] = StrategyBook(strategy_id)
    return book


def set_strategy_position(
    book: StrategyBook, symbol: str, quantity: float, entry_price: float, timestamp: int
) -> bool:
    """Replace the strategy's position from a ``positions.update``; False (nothing changed)
    when the snapshot is older than the held position's last change."""
    pos = book.positions.get(symbol)
    if pos is not None and timestamp < pos.updated_ms:
        return False
    if pos is None:
        pos = book.positions[symbol] = Position(symbol)
    pos.quantity = quantity
    pos.entry_price = entry_price if quantity != 0.0 else 0.0
    pos.snapshot_ms = pos.updated_ms = timestamp
    return True


def fill_strategy(
    book: StrategyBook, symbol: str, signed_qty: float, price: float, fee: float, timestamp: int
) -> bool:
    """Apply a fill to the strategy's position, realized PnL and fees (average cost,
    :func:`~risk_worker.domain.positions.fill_effect`); False (nothing changed) when it is not
    newer than the strategy's last snapshot of the symbol, which already contains it."""
    pos = book.positions.get(symbol)
    if pos is not None and timestamp <= pos.snapshot_ms:
        return False
    if pos is None:
        pos = book.positions[symbol] = Position(symbol)
    quantity, entry, realized = fill_effect(pos.quantity, pos.entry_price, signed_qty, price)
    pos.quantity, pos.entry_price = quantity, entry
    pos.updated_ms = max(pos.updated_ms, timestamp)
    book.realized_pnl += realized
    book.fees += fee
    return True


def observe_strategy(
    book: StrategyBook,
    pnl: float,
    account_equity: float,
    now_ms: int,
    trading_day: Callable[[int], int],
) -> None:
    """Track the strategy's peak PnL and day start (module docstring).

    The caller observes only once the account's balance is known. Nothing is recorded when the
    PnL or the account's equity is not finite or beyond ``EQUITY_MAX`` (an infinite reference
    would switch a drawdown limit off).
    """
    if not (is_equity(pnl) and is_equity(account_equity)):
        return
    if book.peak_pnl is None:
        book.peak_pnl = max(0.0, pnl)
        book.equity_at_peak = account_equity
    elif pnl > book.peak_pnl:
        book.peak_pnl = pnl
        book.equity_at_peak = account_equity
    day = trading_day_of(trading_day, now_ms)
    if book.trading_day != day or book.day_start_pnl is None:
        book.trading_day = day
        book.day_start_pnl = pnl
        book.day_start_equity = account_equity
