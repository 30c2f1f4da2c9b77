"""What survives a restart of an account's strategy books (inside its stored account state).

As for the account (:mod:`~risk_worker.domain.persistence`): positions, realized PnL and fees,
and above all the peak PnL and day start behind a strategy's drawdowns, which must never reset.
A stored strategy is validated like an event: one that fails makes the whole stored account
invalid (refused whole), so a corrupt peak cannot switch a strategy's drawdown limit off.
"""

from __future__ import annotations

import msgspec

from risk_worker.domain.book import Account
from risk_worker.domain.bounds import (
    is_equity,
    is_identifier,
    is_millis,
    is_money,
    is_price,
    is_quantity,
)
from risk_worker.domain.positions import Position
from risk_worker.domain.strategy_book import STRATEGIES_MAX, StrategyBook
from risk_worker.domain.types import MS_PER_DAY


class StrategyPositionState(msgspec.Struct, frozen=True, gc=False):
    """A strategy's position as stored: signed base quantity, entry (quote), timestamps (ms)."""

    symbol: str
    quantity: float
    entry_price: float
    snapshot_ms: int
    updated_ms: int


class StrategyState(msgspec.Struct, frozen=True, gc=False):
    """A strategy book as stored (quote money; None where not yet observed)."""

    strategy_id: str
    positions: list[StrategyPositionState]
    realized_pnl: float
    fees: float
    peak_pnl: float | None
    equity_at_peak: float
    day_start_pnl: float | None
    day_start_equity: float
    trading_day: int | None


def position_problem(
    symbol: str, quantity: float, entry_price: float, snapshot_ms: int, updated_ms: int
) -> str | None:
    """Why a stored position (the account's or a strategy's) is invalid, None when valid:
    symbol an identifier, quantity and entry price within bounds (entry 0 only when flat),
    timestamps within 0..2100-01-01."""
    if not is_identifier(symbol):
        return "a position's symbol is not an identifier"
    if not is_quantity(quantity):
        return f"position {symbol} quantity {quantity!r} out of bounds"
    if not (is_price(entry_price) or (entry_price == 0.0 and quantity == 0.0)):
        return f"position {symbol} entry_price {entry_price!r} out of bounds"
    if not (is_millis(snapshot_ms) and is_millis(updated_ms)):
        return f"position {symbol} timestamp out of bounds"
    return None


def export_strategies(account: Account) -> list[StrategyState]:
    """The account's strategy books, as stored."""
    return [
        StrategyState(
            b.strategy_id,
            [
                StrategyPositionState(
                    p.symbol, p.quantity, p.entry_price, p.snapshot_ms, p.updated_ms
                )
                for p in b.positions.values()
            ],
            b.realized_pnl,
            b.fees,
            b.peak_pnl,
            b.equity_at_peak,
            b.day_start_pnl,
            b.day_start_equity,
            b.trading_day,
        )
        for b in account.strategies.values()
    ]


def strategies_problem(states: list[StrategyState]) -> str | None:
    """Why stored strategy books must not be restored (the first problem), None when valid.

    Checks: at most ``STRATEGIES_MAX``; identifiers; realized PnL and fees money; the peak
    (≥ 0), day start and their equities finite within ``EQUITY_MAX``; the trading day; each
    position's quantity, entry price (0 only when flat) and timestamps within bounds.
    """
    if len(states) > STRATEGIES_MAX:
        return f"{len(states)} strategies, more than {STRATEGIES_MAX}"
    for s in states:
        where = f"strategy {s.strategy_id!r}"
        if not is_identifier(s.strategy_id):
            return "a strategy_id is not an identifier"
        if not (is_money(s.realized_pnl) and is_money(s.fees)):
            return f"{where}: realized_pnl or fees out of bounds"
        for value in (s.equity_at_peak, s.day_start_equity):
            if not is_equity(value):
                return f"{where}: an equity {value!r} out of bounds"
        if s.peak_pnl is not None and not (is_equity(s.peak_pnl) and s.peak_pnl >= 0.0):
            return f"{where}: peak_pnl {s.peak_pnl!r} out of bounds"
        if s.day_start_pnl is not None and not is_equity(s.day_start_pnl):
            return f"{where}: day_start_pnl {s.day_start_pnl!r} out of bounds"
        if s.trading_day is not None and not is_millis(s.trading_day * MS_PER_DAY):
            return f"{where}: trading_day {s.trading_day!r} out of bounds"
        for p in s.positions:
            problem = position_problem(
                p.symbol, p.quantity, p.entry_price, p.snapshot_ms, p.updated_ms
            )
            if problem is not None:
                return f"{where}: {problem}"
    return None


def restore_strategies(account: Account, states: list[StrategyState]) -> None:
    """Put validated stored strategy books into the account (:func:`strategies_problem`).

    A strategy the account already has (an event arrived first) keeps its book, but takes the
    stored peak when higher and the stored day start when it is for the same trading day.
    """
    for s in states:
        book = account.strategies.get(s.strategy_id)
        if book is None:
            book = account.strategies[s.strategy_id] = StrategyBook(s.strategy_id)
            for p in s.positions:
                book.positions[p.symbol] = Position(
                    p.symbol, p.quantity, p.entry_price, p.snapshot_ms, p.updated_ms
                )
            book.realized_pnl, book.fees = s.realized_pnl, s.fees
        if s.peak_pnl is not None and (book.peak_pnl is None or s.peak_pnl > book.peak_pnl):
            book.peak_pnl, book.equity_at_peak = s.peak_pnl, s.equity_at_peak
        if s.day_start_pnl is not None and book.trading_day in (None, s.trading_day):
            book.day_start_pnl, book.day_start_equity = s.day_start_pnl, s.day_start_equity
            book.trading_day = s.trading_day
