"""A strategy's risk metrics within its account, and the policy readers on them.

Over the strategy's own positions (:mod:`~risk_worker.domain.strategy_book`) and its own live
reservations (those approved for orders naming it), with the account's formulas
(:mod:`~risk_worker.domain.risk_metrics`): per symbol the worst cases high = (q + B) × v and
low = (q − S) × v, position notional = max(|high|, |low|); gross exposure = Σ position notional;
net exposure high = Σ high, low = Σ low; unrealized PnL = Σ q × (v − entry).

A strategy has no capital: its PnL = realized PnL − fees + unrealized PnL, and its drawdowns are
fractions of the account's equity (``drawdown_max`` = (peak PnL − PnL) / the account's equity
at the peak; ``drawdown_daily`` = max(0, (day-start PnL − PnL) / the account's day-start
equity); ``daily_pnl`` = PnL − day-start PnL); leverage and concentration divide by the
account's equity. Margin ratio, the windowed drawdown and VaR have no per-strategy value: a
strategy-scoped policy may not limit them (:data:`STRATEGY_READERS` lists what it may).
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from risk_worker.domain.book import Account
from risk_worker.domain.mark import Mark
from risk_worker.domain.pending import NO_SIDES, SymbolPending
from risk_worker.domain.positions import fill_effect
from risk_worker.domain.risk_config import RiskConfig, trading_day_of
from risk_worker.domain.strategy_values import StrategyMetrics
from risk_worker.domain.types import Metric
from risk_worker.domain.vocab import (
    METRIC_CONCENTRATION,
    METRIC_DAILY_PNL,
    METRIC_DRAWDOWN_DAILY,
    METRIC_DRAWDOWN_MAX,
    METRIC_GROSS_EXPOSURE,
    METRIC_LEVERAGE,
    METRIC_NET_EXPOSURE,
    METRIC_OPEN_POSITIONS,
    METRIC_POSITION_NOTIONAL,
)

READS_ACCOUNT, READS_SYMBOL = 0, 1
"""As in :mod:`~risk_worker.domain.policies`: a reader takes the metrics, or the metrics and
a symbol (None for the largest position)."""


def _prop(name: str) -> Callable[[StrategyMetrics], float]:
    """The reader of the StrategyMetrics property ``name``: the function behind it in the pure
    core; in the compiled core (a native class: its properties are native getters) the
    attribute read."""
    prop = vars(StrategyMetrics)[name]
    if isinstance(prop, property) and prop.fget is not None:
        return prop.fget
    getter: Callable[[StrategyMetrics], float] = operator.attrgetter(name)
    return getter


def _notional(m: StrategyMetrics, symbol: str | None) -> float:
    if symbol is None:
        return max(m.position_notional.values(), default=0.0)
    return m.position_notional.get(symbol, 0.0)


def _open_positions(m: StrategyMetrics) -> float:
    return float(len(m.position_notional))


STRATEGY_READERS: dict[Metric, tuple[int, Callable[..., float]]] = {
    METRIC_GROSS_EXPOSURE: (READS_ACCOUNT, operator.attrgetter("gross_exposure")),
    METRIC_NET_EXPOSURE: (READS_ACCOUNT, operator.attrgetter("net_exposure")),
    METRIC_POSITION_NOTIONAL: (READS_SYMBOL, _notional),
    METRIC_CONCENTRATION: (READS_SYMBOL, StrategyMetrics.concentration),
    METRIC_LEVERAGE: (READS_ACCOUNT, _prop("leverage")),
    METRIC_OPEN_POSITIONS: (READS_ACCOUNT, _open_positions),
    METRIC_DAILY_PNL: (READS_ACCOUNT, _prop("daily_pnl")),
    METRIC_DRAWDOWN_MAX: (READS_ACCOUNT, _prop("drawdown_max")),
    METRIC_DRAWDOWN_DAILY: (READS_ACCOUNT, _prop("drawdown_daily")),
}
"""The post-trade metrics a strategy-scoped policy may limit, read on the strategy's metrics
(a lower bound on net exposure reads its low case, as for accounts)."""

STRATEGY_LOWER_BOUND_READERS: dict[Metric, tuple[int, Callable[..., float]]] = {
    METRIC_NET_EXPOSURE: (READS_ACCOUNT, operator.attrgetter("net_exposure_low")),
}


def compute_strategy_metrics(
    account: Account,
    strategy_id: str,
    marks: dict[str, Mark],
    config: RiskConfig,
    now_ms: int,
    account_equity: float,
    exclude_order: str | None = None,
    fill: tuple[str, float, float] | None = None,
    reserved: tuple[int, dict[str, SymbolPending]] | None = None,
) -> StrategyMetrics:
    """The strategy's metrics; with ``fill`` = (symbol, signed base quantity, price) as if that
    order had filled (fees ignored: the check's post-trade view).

    A strategy without a book holds nothing (its reservations still count). The peak and the
    day start come from the book (:func:`~risk_worker.domain.strategy_book.observe_strategy`);
    not yet observed, or observed on an earlier trading day, the current values stand in, the
    peak never below 0. ``account_equity`` is the account's equity at the same moment (post-
    trade for a check). ``exclude_order`` leaves that order's own reservation out.
    """
    book = account.strategies.get(strategy_id)
    held = {} if book is None else book.positions
    if reserved is None:  # the caller may pass what it already has (the same result)
        reserved = account.pending.of_strategy(strategy_id, exclude_order)
    orders, by_symbol = reserved
    realized = 0.0 if book is None else book.realized_pnl - book.fees
    # an ordered set (held, then reserved, then the fill's): the sums below do not depend on
    # the process's string hash seed, so every instance computes the same figures to the bit
    symbols = dict.fromkeys(s for s, p in held.items() if p.quantity != 0.0)
    symbols.update(dict.fromkeys(by_symbol))
    if fill is not None:
        symbols[fill[0]] = None
    oldest_fresh = now_ms - config.mark_max_age_ms
    gross = net = net_low = unrealized = 0.0
    notional_by_symbol: dict[str, float] = {}
    stale: list[str] = []
    for symbol in symbols:
        pos = held.get(symbol)
        qty = 0.0 if pos is None else pos.quantity
        entry = 0.0 if pos is None else pos.entry_price
        if fill is not None and fill[0] == symbol:
            qty, entry, gained = fill_effect(qty, entry, fill[1], fill[2])
            realized += gained
        sides = by_symbol.get(symbol, NO_SIDES)
        buy, sell, reserved_price = sides.buy_qty, sides.sell_qty, sides.price
        if qty == 0.0 and buy == 0.0 and sell == 0.0:
            continue
        mark = marks.get(symbol)
        price = (entry if qty != 0.0 else reserved_price) if mark is None else mark.price
        if mark is None or mark.received_ms < oldest_fresh:
            stale.append(symbol)
        high = (qty + buy) * price
        low = (qty - sell) * price
        notional = max(abs(high), abs(low))
        gross += notional
        net += high
        net_low += low
        unrealized += qty * (price - entry)
        notional_by_symbol[symbol] = notional
    pnl = realized + unrealized
    peak = None if book is None else book.peak_pnl
    if peak is None:
        peak, equity_at_peak = max(0.0, pnl), account_equity
    elif pnl > peak:
        peak, equity_at_peak = pnl, account_equity
    else:
        assert book is not None
        equity_at_peak = book.equity_at_peak
    if (
        book is None
        or book.day_start_pnl is None
        or book.trading_day != trading_day_of(config.trading_day, now_ms)
    ):
        day_pnl, day_equity = pnl, account_equity
    else:
        day_pnl, day_equity = book.day_start_pnl, book.day_start_equity
    return StrategyMetrics(
        strategy_id,
        gross,
        net,
        net_low,
        notional_by_symbol,
        orders,
        realized,
        unrealized,
        peak,
        equity_at_peak,
        day_pnl,
        day_equity,
        account_equity,
        tuple(stale),
    )


def empty_strategy(strategy_id: str, account_equity: float) -> StrategyMetrics:
    """The metrics of a strategy that holds and reserves nothing (PnL 0, no drawdown)."""
    return StrategyMetrics(
        strategy_id,
        0.0,
        0.0,
        0.0,
        {},
        0,
        0.0,
        0.0,
        0.0,
        account_equity,
        0.0,
        account_equity,
        account_equity,
    )
