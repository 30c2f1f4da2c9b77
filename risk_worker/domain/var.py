"""Historical Value at Risk and expected shortfall of an account (issue 13).

Historical simulation on the account's positions plus its live reservations, over the aligned
returns of :class:`~risk_worker.domain.returns.ReturnHistory`:

- exposure of a symbol: its worst-case value as in :mod:`risk_worker.domain.metrics`, high =
  (q + B) × v or low = (q − S) × v, whichever has the larger magnitude (the case its position
  notional takes; high on a tie), v the mark (else the entry price, else the reservations'
  highest price);
- the scenarios: the latest ``window`` boundaries at which every held symbol (exposure ≠ 0)
  has a return; scenario P&L = Σ exposure × (e^r − 1) over the held symbols, n scenarios;
- P&Ls sorted ascending (0-based): var_95 = −P&L[⌊0.05·n⌋], var_99 = −P&L[⌊0.01·n⌋],
  es_97_5 = −mean(P&L[0 … ⌈0.025·n⌉ − 1]); each floored at 0 (losses positive, quote) and
  scaled to the horizon by √(horizon / interval);
- var_99_fraction = var_99 / equity (∞ when equity ≤ 0 with a loss, 0 without one).

With fewer than ``min_samples`` returns for a held symbol (or fewer aligned scenarios than
that) the metrics are unknown (None): :attr:`VarResult.lacking` names the symbols short of
history. Nothing held: every metric is 0.

Cost: the aligned vectors are built at sampling time (:mod:`risk_worker.domain.returns`); a
computation is then one pass over n scenarios × held symbols and one sort of n floats, or for a
single held symbol only the pick of three ranks from its presorted vector and the mean of the
⌈0.025·n⌉ worst.

Tolerance (several held symbols, an account's repeated computations between two samples):
ticks move every mark, so every exposure changes a little between two computations. The
account's last scenario P&Ls are kept with the weight b of each symbol they were computed
with; a symbol whose exposure w is within |w − b| ≤ :data:`TOLERANCE` × |b| (so of the same
sign) is not passed over and b is kept (drift never compounds unseen), adding
slack = Σ |w − b| × M_s, M_s the largest |e^r − 1| of the symbol's aligned vector. Every
true scenario P&L lies within ± slack of the one used, so each rank and the tail mean move by
at most slack: var_95 = max(0, slack − P&L[⌊0.05·n⌋]) × scale, var_99 likewise, es_97_5 =
max(0, slack − mean of the tail) × scale. The results are exact at each new sample (the
cached P&Ls are dropped then), for a single held symbol and for a first computation; between,
never below the exact value and at most 2 × slack × scale ≤ 2 × TOLERANCE × Σ |b| × M_s ×
scale above it. When no symbol is passed over the ranks kept are reused (no sort).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from risk_worker.domain.book import Account
from risk_worker.domain.mark import Mark
from risk_worker.domain.positions import fill_effect
from risk_worker.domain.returns import Aligned, ReturnHistory
from risk_worker.domain.var_result import NOTHING_HELD, VarResult

INF: Final = math.inf

TOLERANCE: Final = 0.005
"""Relative move of a held symbol's exposure the incremental scenario P&Ls do not pass over
(fraction; the bound of the module docstring). Below 1, so a sign change is always passed."""


def exposures(
    account: Account, marks: Mapping[str, Mark], exclude_order: str | None = None
) -> dict[str, float]:
    """symbol → signed worst-case value (quote) of every symbol held or reserved (≠ 0)."""
    out: dict[str, float] = {}
    for symbol, pos in account.positions.items():
        if pos.quantity != 0.0:
            mark = marks.get(symbol)
            out[symbol] = pos.quantity * (pos.entry_price if mark is None else mark.price)
    if account.pending:
        _, by_symbol = account.pending.exposure(exclude_order)
        for symbol in by_symbol:
            value = _worst_value(account, marks, symbol, None, exclude_order)
            if value:
                out[symbol] = value
            else:
                out.pop(symbol, None)
    return out


def post_trade_exposures(
    pre: dict[str, float],
    account: Account,
    marks: Mapping[str, Mark],
    symbol: str,
    signed_qty: float,
    price: float,
    exclude_order: str | None = None,
) -> dict[str, float]:
    """``pre`` with ``symbol`` as if ``signed_qty`` filled at ``price`` (see
    :func:`~risk_worker.domain.metrics.simulate_fill`)."""
    out = dict(pre)
    value = _worst_value(account, marks, symbol, (signed_qty, price), exclude_order)
    if value:
        out[symbol] = value
    else:
        out.pop(symbol, None)
    return out


def _worst_value(
    account: Account,
    marks: Mapping[str, Mark],
    symbol: str,
    fill: tuple[float, float] | None,
    exclude_order: str | None,
) -> float:
    pos = account.positions.get(symbol)
    qty = 0.0 if pos is None else pos.quantity
    entry = 0.0 if pos is None else pos.entry_price
    if fill is not None:
        qty, entry, _ = fill_effect(qty, entry, fill[0], fill[1])
    sides = account.pending.sides(symbol, exclude_order)
    buy, sell, reserved_price = sides.buy_qty, sides.sell_qty, sides.price
    mark = marks.get(symbol)
    price = mark.price if mark is not None else entry if qty != 0.0 else reserved_price
    high = (qty + buy) * price
    low = (qty - sell) * price
    return high if abs(high) >= abs(low) else low


def historical_var(
    exposure: Mapping[str, float],
    history: ReturnHistory,
    min_samples: int,
    horizon_s: float,
    account_id: str | None = None,
    tolerance: float = TOLERANCE,
) -> VarResult:
    """VaR 95 %, VaR 99 % and ES 97.5 % of ``exposure`` (the module docstring's rules).

    Args:
        exposure: symbol → signed value (quote); zero values are ignored.
        history: the sampled returns (its interval and window apply).
        min_samples: fewest aligned returns a held symbol needs (count).
        horizon_s: the horizon the results are scaled to (seconds).
        account_id: when given, the account's last scenario P&Ls are kept in ``history``
            (:func:`scenario_quantiles`), so the next computation for it passes only over the
            symbols whose exposure moved by more than ``tolerance`` (the results then
            conservative by at most the module docstring's bound).
        tolerance: relative move of an exposure not passed over (fraction, 0 ≤ t < 1).
    """
    held = tuple(sorted(s for s, v in exposure.items() if v != 0.0))
    if not held:
        return NOTHING_HELD
    aligned = history.aligned(held)
    n, ascending = aligned[2], aligned[4]
    if n < min_samples:
        lacking = tuple(s for s in held if history.return_count(s) < min_samples) or held
        return VarResult(None, None, None, n, lacking)
    slack = 0.0
    if ascending:  # one symbol: its P&Ls in order are its sorted growth × exposure
        tail = math.ceil(0.025 * n)
        value = exposure[held[0]]
        if value < 0.0:
            ascending = ascending[::-1]
        p95 = value * ascending[math.floor(0.05 * n)]
        p99 = value * ascending[math.floor(0.01 * n)]
        es = -math.fsum([value * g for g in ascending[:tail]]) / tail
    else:
        p95, p99, es, slack = scenario_quantiles(exposure, aligned, history, account_id, tolerance)
    scale = math.sqrt(horizon_s * 1000.0 / history.interval_ms)
    return VarResult(
        max(0.0, slack - p95) * scale,
        max(0.0, slack - p99) * scale,
        max(0.0, es + slack) * scale,
        n,
    )


DRIFT_RESET: Final = 4.0
"""An incremental P&L vector is recomputed in full once a weight it held was more than this
many times the largest weight now (its rounding errors are relative to the larger ones)."""


def scenario_quantiles(
    exposure: Mapping[str, float],
    aligned: Aligned,
    history: ReturnHistory,
    account_id: str | None,
    tolerance: float = TOLERANCE,
) -> tuple[float, float, float, float]:
    """Of the scenario P&Ls Σ exposure × (e^r − 1) over ``aligned``'s symbols (n of them):
    (P&L[⌊0.05·n⌋], P&L[⌊0.01·n⌋] sorted ascending, −mean of the ⌈0.025·n⌉ worst, slack),
    quote at the sample interval; every true P&L is within ± slack of the one used.

    With ``account_id``, from the account's last P&Ls when they were built on the same aligned
    vectors: a symbol whose exposure w moved by at most ``tolerance`` × |b| from the weight b
    they hold for it is not passed over (slack += |w − b| × max |e^r − 1| of its vector); the
    others are (O(n) each, b becomes w); when none is, the ranks kept are reused (no sort).
    Rounding differs from a full computation by a few ulps of the largest term since the last
    full one; a full computation (slack 0) is made at every new sample (the aligned vectors
    change) and when exposures shrank by more than :data:`DRIFT_RESET`.
    """
    held, vectors, largest_growth = aligned[0], aligned[1], aligned[5]
    weights = [exposure[s] for s in held]
    largest = max(map(abs, weights))
    cached = None if account_id is None else history.scenario_cache.get(account_id)
    slack = 0.0
    if cached is not None and cached[0] is aligned and cached[3] <= DRIFT_RESET * largest:
        _, before, pnl, seen, ranks = cached
        moved = False
        for k, (w, b) in enumerate(zip(weights, before, strict=True)):
            if w != b:
                d = w - b
                if abs(d) <= tolerance * abs(b):  # tolerance < 1: same sign
                    slack += abs(d) * largest_growth[k]
                    weights[k] = b
                else:
                    pnl = [p + d * g for p, g in zip(pnl, vectors[k], strict=True)]
                    moved = True
        seen = max(seen, largest)
        if not moved:
            return (*ranks, slack)
    else:
        w0 = weights[0]
        pnl = [w0 * g for g in vectors[0]]
        for w, vector in zip(weights[1:], vectors[1:], strict=True):
            pnl = [p + w * g for p, g in zip(pnl, vector, strict=True)]
        seen = largest
    ordered = sorted(pnl)
    n = len(ordered)
    tail = math.ceil(0.025 * n)
    ranks = (
        ordered[math.floor(0.05 * n)],
        ordered[math.floor(0.01 * n)],
        -math.fsum(ordered[:tail]) / tail,
    )
    if account_id is not None:
        history.scenario_cache[account_id] = (aligned, weights, pnl, seen, ranks)
    return (*ranks, slack)


def informational_var(
    account: Account,
    marks: Mapping[str, Mark],
    history: ReturnHistory,
    min_samples: int,
    horizon_s: float,
) -> VarResult:
    """The account's VaR for ``risk.metrics`` when no policy limits it: recomputed (from its
    :func:`exposures` now) only when the history has a new sample (about once per sample
    interval), otherwise the last result (the positions and marks of then). The monitor
    evaluates VaR policies on a fresh one."""
    account_id = account.account_id
    kept = history.kept.get(account_id)
    if kept is not None and kept[0] == history.version and isinstance(kept[1], VarResult):
        return kept[1]
    result = historical_var(exposures(account, marks), history, min_samples, horizon_s, account_id)
    history.kept[account_id] = (history.version, result)
    return result
