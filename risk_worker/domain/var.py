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
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

from risk_worker.domain.book import Account, Mark
from risk_worker.domain.positions import fill_effect
from risk_worker.domain.returns import Aligned, ReturnHistory

INF = math.inf


class VarConfig(msgspec.Struct, frozen=True):
    """Parameters of the historical VaR (from settings).

    Attributes:
        sample_interval_ms: interval of the mark samples (ms; ``RISK_VAR_SAMPLE_INTERVAL``).
        window: most samples kept per symbol and most scenarios (``RISK_VAR_WINDOW``).
        min_samples: fewest aligned returns a held symbol needs (``RISK_VAR_MIN_SAMPLES``).
        horizon_s: the horizon VaR and ES are scaled to (seconds; ``RISK_VAR_HORIZON``).
    """

    sample_interval_ms: int = 60_000
    window: int = 1_440
    min_samples: int = 120
    horizon_s: float = 86_400.0


class VarResult(msgspec.Struct, frozen=True, gc=False):
    """VaR and ES of an account (quote currency, losses positive, at the horizon).

    None values: not computable (``lacking`` names the held symbols short of history).
    ``scenarios`` is n.
    """

    var_95: float | None
    var_99: float | None
    es_97_5: float | None
    scenarios: int
    lacking: tuple[str, ...] = ()

    def var_99_fraction(self, equity: float) -> float | None:
        """var_99 / equity; ∞ when equity ≤ 0 with a loss; None when var_99 is."""
        var = self.var_99
        if var is None:
            return None
        if var == 0.0:
            return 0.0
        return INF if equity <= 0.0 else var / equity


NOTHING_HELD = VarResult(0.0, 0.0, 0.0, 0)


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
    buy, sell, reserved_price = account.pending.sides(symbol, exclude_order)
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
) -> VarResult:
    """VaR 95 %, VaR 99 % and ES 97.5 % of ``exposure`` (the module docstring's rules).

    Args:
        exposure: symbol → signed value (quote); zero values are ignored.
        history: the sampled returns (its interval and window apply).
        min_samples: fewest aligned returns a held symbol needs (count).
        horizon_s: the horizon the results are scaled to (seconds).
        account_id: when given, the account's last scenario P&Ls are kept in ``history``
            (:func:`scenario_pnl`), so the next computation for it passes only over the
            symbols whose exposure changed.
    """
    held = tuple(sorted(s for s, v in exposure.items() if v != 0.0))
    if not held:
        return NOTHING_HELD
    aligned = history.aligned(held)
    n, ascending = aligned[2], aligned[4]
    if n < min_samples:
        lacking = tuple(s for s in held if history.return_count(s) < min_samples) or held
        return VarResult(None, None, None, n, lacking)
    tail = math.ceil(0.025 * n)
    i95, i99 = math.floor(0.05 * n), math.floor(0.01 * n)
    if ascending:  # one symbol: its P&Ls in order are its sorted growth × exposure
        value = exposure[held[0]]
        if value < 0.0:
            ascending = ascending[::-1]
        worst = [value * g for g in ascending[:tail]]
        p95, p99 = value * ascending[i95], value * ascending[i99]
    else:
        pnl = sorted(scenario_pnl(exposure, aligned, history, account_id))
        worst, p95, p99 = pnl[:tail], pnl[i95], pnl[i99]
    scale = math.sqrt(horizon_s * 1000.0 / history.interval_ms)
    es = -math.fsum(worst) / tail
    return VarResult(max(0.0, -p95) * scale, max(0.0, -p99) * scale, max(0.0, es) * scale, n)


DRIFT_RESET = 4.0
"""An incremental P&L vector is recomputed in full once a weight it held was more than this
many times the largest weight now (its rounding errors are relative to the larger ones)."""


def scenario_pnl(
    exposure: Mapping[str, float],
    aligned: Aligned,
    history: ReturnHistory,
    account_id: str | None,
) -> list[float]:
    """The scenario P&Ls Σ exposure × (e^r − 1) over ``aligned``'s symbols, in scenario order.

    With ``account_id``, from the account's last vector when it was built on the same aligned
    vectors: only the symbols whose exposure changed are passed over (O(n) each), the others
    cost nothing. Rounding differs from a full computation by a few ulps of the largest term
    since the last full one; a full computation is made at every new sample (the aligned
    vectors change) and when exposures shrank by more than :data:`DRIFT_RESET`.
    """
    held, vectors = aligned[0], aligned[1]
    weights = [exposure[s] for s in held]
    largest = max(map(abs, weights))
    cached = None if account_id is None else history.scenario_cache.get(account_id)
    if cached is not None and cached[0] is aligned and cached[3] <= DRIFT_RESET * largest:
        _, before, pnl, seen = cached
        for w, b, vector in zip(weights, before, vectors, strict=True):
            if w != b:
                d = w - b
                pnl = [p + d * g for p, g in zip(pnl, vector, strict=True)]
        seen = max(seen, largest)
    else:
        w0 = weights[0]
        pnl = [w0 * g for g in vectors[0]]
        for w, vector in zip(weights[1:], vectors[1:], strict=True):
            pnl = [p + w * g for p, g in zip(pnl, vector, strict=True)]
        seen = largest
    if account_id is not None:
        history.scenario_cache[account_id] = (aligned, weights, pnl, seen)
    return pnl


def informational_var(
    account_id: str,
    exposure: Mapping[str, float],
    history: ReturnHistory,
    min_samples: int,
    horizon_s: float,
) -> VarResult:
    """The account's VaR for ``risk.metrics`` when no policy limits it: recomputed only when
    the history has a new sample (about once per sample interval), otherwise the last result
    (the positions and marks of then). The monitor evaluates VaR policies on a fresh one."""
    kept = history.kept.get(account_id)
    if kept is not None and kept[0] == history.version and isinstance(kept[1], VarResult):
        return kept[1]
    result = historical_var(exposure, history, min_samples, horizon_s, account_id)
    history.kept[account_id] = (history.version, result)
    return result
