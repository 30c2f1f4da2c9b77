"""Computing an account's risk metrics from the book, the latest marks and the live reservations,
and the post-trade metrics of an order's simulated fill.

The metrics, their units and formulas (the worst case of the reservations included) are stated
in :mod:`risk_worker.domain.risk_metrics`; this module computes them: :func:`compute_metrics`
over an account's positions and reservations, :func:`simulate_fill` from the pre-trade metrics
in O(1) plus a copy of the per-symbol notionals.
"""

from __future__ import annotations

from risk_worker.domain.book import Account
from risk_worker.domain.equity_window import window_peak
from risk_worker.domain.mark import Mark
from risk_worker.domain.notional_summary import NotionalSummary
from risk_worker.domain.pending import NO_SIDES, SymbolPending
from risk_worker.domain.positions import fill_effect
from risk_worker.domain.risk_config import RiskConfig, trading_day_of
from risk_worker.domain.risk_metrics import AccountMetrics


def _reserved_worst_cases(
    account: Account,
    marks: dict[str, Mark],
    config: RiskConfig,
    by_symbol: dict[str, SymbolPending],
    notional_by_symbol: dict[str, float] | None,
    stale: list[str],
    oldest_fresh: int,
) -> tuple[float, float, float, float, list[float]]:
    """Replace each reserved symbol's held contribution by its worst case.

    Updates ``notional_by_symbol`` (when given) and ``stale`` in place; returns what gross
    exposure, net exposure (high), net exposure (low) and margin used change by (quote), and
    the reserved symbols' worst-case notionals in ``by_symbol``'s order (for a compact
    check's summary). The held notional replaced is |q × v|, the value the position pass
    stored for the symbol (0.0 for a symbol held only through reservations).
    """
    gross = high_total = low_total = margin = 0.0
    notionals: list[float] = []
    positions = account.positions
    for symbol, sides in by_symbol.items():
        buy, sell, reserved_price = sides.buy_qty, sides.sell_qty, sides.price
        pos = positions.get(symbol)
        qty = 0.0 if pos is None else pos.quantity
        mark = marks.get(symbol)
        if mark is not None:  # the valuation price v of the module docstring
            price = mark.price
        else:
            price = pos.entry_price if pos is not None and qty != 0.0 else reserved_price
        held = qty * price
        high = (qty + buy) * price
        low = (qty - sell) * price
        notional = max(abs(high), abs(low))
        added = notional - (abs(held) if qty != 0.0 else 0.0)
        gross += added
        high_total += high - held
        low_total += low - held
        margin += added * config.margin_rate(symbol)
        if notional_by_symbol is None:
            notionals.append(notional)
        else:
            notional_by_symbol[symbol] = notional
        if qty == 0.0 and (mark is None or mark.received_ms < oldest_fresh):
            stale.append(symbol)
    return gross, high_total, low_total, margin, notionals


def compute_metrics(
    account: Account,
    marks: dict[str, Mark],
    config: RiskConfig,
    now_ms: int,
    exclude_order: str | None = None,
    notionals: bool = True,
) -> AccountMetrics:
    """Current metrics of an account, over its own positions and live reservations.

    Peak, day start and window peak come from the account (see
    :func:`~risk_worker.domain.equity_window.observe_equity`); when not yet observed (the day
    start: or observed on an earlier trading day), the current equity stands in. ``exclude_order``
    leaves that order's own reservation out (used when the order is being checked again).
    ``notionals`` False (a compact check) builds no ``position_notional`` dict: the metrics
    carry a :class:`~risk_worker.domain.notional_summary.NotionalSummary` of it instead, and
    ``open_positions`` is counted; every other field is the same to the bit.
    """
    unrealized = gross = net = margin = 0.0
    stale: list[str] = []
    notional_by_symbol: dict[str, float] | None = {} if notionals else None
    summary = None if notionals else NotionalSummary(0.0, None, 0.0)
    count = 0  # the symbols the summary met (notionals False)
    oldest_fresh = now_ms - config.mark_max_age_ms
    rates = config.margin_rates  # config.margin_rate(symbol), without a call per position
    default_rate = config.default_margin_rate
    pending = account.pending
    pending.expire(now_ms)
    (orders, pending_notional, pending_margin), by_symbol = pending.exposure(exclude_order)
    for pos in account.positions.values():  # keyed by pos.symbol: no (key, value) tuple
        qty = pos.quantity
        if qty == 0.0:
            continue
        symbol = pos.symbol
        entry = pos.entry_price
        try:  # a mark is almost always there: cheaper than marks.get
            mark = marks[symbol]
        except KeyError:
            price = entry
            stale.append(symbol)
        else:
            price = mark.price
            if mark.received_ms < oldest_fresh:
                stale.append(symbol)
        value = qty * price
        notional = abs(value)
        unrealized += value - qty * entry
        gross += notional
        net += value
        margin += notional * (rates.get(symbol, default_rate) if rates else default_rate)
        if notional_by_symbol is not None:
            notional_by_symbol[symbol] = notional
        elif summary is not None and (not by_symbol or symbol not in by_symbol):
            count += 1  # a reserved symbol is met below, at its worst case
            summary.fold(symbol, notional)
    net_low = net
    if by_symbol:
        added_gross, added_high, added_low, added_margin, reserved = _reserved_worst_cases(
            account, marks, config, by_symbol, notional_by_symbol, stale, oldest_fresh
        )
        gross += added_gross
        net += added_high
        net_low += added_low
        margin += added_margin
        if summary is not None:
            count += len(reserved)
            for symbol, notional in zip(by_symbol, reserved, strict=True):
                summary.fold(symbol, notional)
    equity = account.balance + unrealized
    peak, day_start, recent = _reference_equities(account, equity, config, now_ms)
    return AccountMetrics(
        equity,
        account.balance,
        unrealized,
        gross,
        net,
        net_low,
        margin,
        pending_notional,
        pending_margin,
        orders,
        count if notional_by_symbol is None else len(notional_by_symbol),
        notional_by_symbol,
        tuple(stale),
        peak,
        day_start,
        recent,
        None,
        summary,
    )


def _reference_equities(
    account: Account, equity: float, config: RiskConfig, now_ms: int
) -> tuple[float, float, float]:
    """Peak, day-start and window-peak equity of an account whose equity is ``equity`` now
    (quote): the account's, ``equity`` standing in for one not observed yet (the day start:
    or observed on an earlier trading day) or below it (the peaks)."""
    peak = account.peak_equity
    if peak is None or equity > peak:
        peak = equity
    day_start = account.day_start_equity
    if day_start is None or account.trading_day != trading_day_of(config.trading_day, now_ms):
        day_start = equity
    recent = window_peak(account, now_ms)
    if recent is None or equity > recent:
        recent = equity
    return peak, day_start, recent


def _post_notionals(
    pre: AccountMetrics, symbol: str, notional: float, had: bool, kept: bool
) -> tuple[dict[str, float] | None, NotionalSummary | None, int]:
    """The post-trade ``position_notional`` (a copy of ``pre``'s with ``symbol`` at
    ``notional``, or without it when not ``kept``), or for compact ``pre`` its summary held at
    ``symbol``; and the open positions. ``had``: ``symbol`` was in ``pre``'s (held or
    reserved).

    Raises:
        LookupError: ``pre`` has neither a notional dict nor a summary.
    """
    held = pre.position_notional
    if held is None:
        summary = pre.notional_summary
        if summary is None:
            raise LookupError("pre-trade metrics without position notionals")
        count = pre.open_positions - (1 if had else 0) + (1 if kept else 0)
        return None, summary.after(symbol, notional, kept), count
    notional_by_symbol = dict(held)
    if kept:
        notional_by_symbol[symbol] = notional
    else:
        notional_by_symbol.pop(symbol, None)
    return notional_by_symbol, None, len(notional_by_symbol)


def simulate_fill(
    pre: AccountMetrics,
    account: Account,
    marks: dict[str, Mark],
    config: RiskConfig,
    symbol: str,
    signed_qty: float,
    price: float,
    now_ms: int,
    exclude_order: str | None = None,
) -> AccountMetrics:
    """Post-trade metrics if ``signed_qty`` of ``symbol`` filled at ``price`` (fees ignored).

    Equal to applying the fill to the book and computing the metrics: the fill moves the held
    position, and the symbol's live reservations (without ``exclude_order``, as in ``pre``)
    then count as the worst case of them filling on top of it, so the order is simulated on
    the position the pending orders could leave. Derived from the pre-trade metrics by
    replacing the one symbol's contribution: O(1) plus a copy of the per-symbol notionals and
    a pass over the account's reservations. The new position is valued at the symbol's mark,
    or at its new entry price when there is no mark. Compact ``pre`` metrics (no notional
    dict: ``compute_metrics(..., notionals=False)``) give compact post-trade metrics, their
    summary held at ``symbol`` (:meth:`NotionalSummary.after`).

    Raises:
        LookupError: ``pre`` has neither a notional dict nor a summary.
    """
    pos = account.positions.get(symbol)
    old_qty = 0.0 if pos is None else pos.quantity
    old_entry = 0.0 if pos is None else pos.entry_price
    mark = marks.get(symbol)
    side = account.pending.sides(symbol, exclude_order) if pre.pending_orders else NO_SIDES
    new_qty, new_entry, realized = fill_effect(old_qty, old_entry, signed_qty, price)
    # v, high, low and the position notional of the module docstring, before and after
    buy, sell, reserved_price = side.buy_qty, side.sell_qty, side.price
    if mark is None:
        old_price = old_entry if old_qty != 0.0 else reserved_price
        new_price = new_entry if new_qty != 0.0 else reserved_price
    else:
        old_price = new_price = mark.price
    old_high = (old_qty + buy) * old_price
    new_high = (new_qty + buy) * new_price
    if side is NO_SIDES:
        old_low, new_low = old_high, new_high
        old_notional, new_notional = abs(old_high), abs(new_high)
    else:
        old_low = (old_qty - sell) * old_price
        new_low = (new_qty - sell) * new_price
        old_notional = max(abs(old_high), abs(old_low))
        new_notional = max(abs(new_high), abs(new_low))
    rate = config.margin_rates.get(symbol, config.default_margin_rate)  # config.margin_rate()
    unrealized = (
        pre.unrealized_pnl - old_qty * (old_price - old_entry) + new_qty * (new_price - new_entry)
    )
    balance = pre.balance + realized
    equity = balance + unrealized
    stale = pre.stale_symbols
    if symbol in stale:
        stale = tuple(s for s in stale if s != symbol)
    kept = new_qty != 0.0 or side is not NO_SIDES
    if kept and (mark is None or mark.received_ms < now_ms - config.mark_max_age_ms):
        stale = (*stale, symbol)
    had = old_qty != 0.0 or side is not NO_SIDES  # in the pre-trade notionals
    notional_by_symbol, summary, open_positions = _post_notionals(
        pre, symbol, new_notional, had, kept
    )
    peak = pre.peak_equity
    window_peak = pre.window_peak_equity
    return AccountMetrics(
        equity,
        balance,
        unrealized,
        pre.gross_exposure - old_notional + new_notional,
        pre.net_exposure - old_high + new_high,
        pre.net_exposure_low - old_low + new_low,
        pre.position_margin + (new_notional - old_notional) * rate,
        pre.pending_notional,
        pre.pending_margin,
        pre.pending_orders,
        open_positions,
        notional_by_symbol,
        stale,
        equity if equity > peak else peak,
        pre.day_start_equity,
        window_peak if window_peak > equity else equity,  # max(equity, window_peak)
        None,
        summary,
    )
