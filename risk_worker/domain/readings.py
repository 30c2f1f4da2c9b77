"""The values a pre-trade check's policies read, computed once per check from the metrics' fields.

A prepared policy (:mod:`~risk_worker.domain.policy_set`) names its metric by a slot: an index
into the list :func:`account_readings` (or :func:`strategy_readings`) returns, or one of the
symbol-dependent slots :data:`NOTIONAL_AT` and :data:`CONCENTRATION_AT` read by
:func:`symbol_reading`. So a check reads each field of the post-trade metrics once and calls no
property per policy. The formulas are those of
:class:`~risk_worker.domain.risk_metrics.AccountMetrics` and
:class:`~risk_worker.domain.strategy_values.StrategyMetrics`, operation for operation: the
values are the readers' (:data:`~risk_worker.domain.policies.READERS`) to the last bit, which
``tests/unit/test_domain_readings.py`` checks.

Comparisons are op codes (:data:`OP_CODE`), compared inline by :func:`holds` instead of a call
of an ``operator`` function.
"""

from __future__ import annotations

import math
from typing import Final

from risk_worker.domain.notional_summary import NotionalSummary
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.strategy_values import StrategyMetrics
from risk_worker.domain.types import Metric, Operator
from risk_worker.domain.vocab import (
    METRIC_CONCENTRATION,
    METRIC_DAILY_PNL,
    METRIC_DRAWDOWN_DAILY,
    METRIC_DRAWDOWN_MAX,
    METRIC_DRAWDOWN_WINDOW,
    METRIC_ES_97_5,
    METRIC_GROSS_EXPOSURE,
    METRIC_LEVERAGE,
    METRIC_MARGIN_RATIO,
    METRIC_NET_EXPOSURE,
    METRIC_OPEN_POSITIONS,
    METRIC_POSITION_NOTIONAL,
    METRIC_VAR_95,
    METRIC_VAR_99,
    METRIC_VAR_99_FRACTION,
    OPERATOR_GT,
    OPERATOR_GTE,
    OPERATOR_LT,
    OPERATOR_LTE,
)

NAN: Final = math.nan
INF: Final = math.inf

LEVERAGE: Final = 0
MARGIN_RATIO: Final = 1
DRAWDOWN_DAILY: Final = 2
DRAWDOWN_MAX: Final = 3
DRAWDOWN_WINDOW: Final = 4
DAILY_PNL: Final = 5
GROSS_EXPOSURE: Final = 6
NET_EXPOSURE: Final = 7
NET_EXPOSURE_LOW: Final = 8
OPEN_POSITIONS: Final = 9
VAR_95: Final = 10
VAR_99: Final = 11
ES_97_5: Final = 12
VAR_99_FRACTION: Final = 13
"""Slots of the list :func:`account_readings` returns (:func:`strategy_readings` fills the
ones a strategy has; the others are NaN there)."""

NOTIONAL_AT: Final = -1
"""Slot of ``position_notional`` at a symbol (the largest when None): :func:`symbol_reading`."""
CONCENTRATION_AT: Final = -2
"""Slot of ``concentration`` at a symbol (the largest when None): :func:`symbol_reading`."""

SLOT: Final[dict[Metric, int]] = {
    METRIC_LEVERAGE: LEVERAGE,
    METRIC_MARGIN_RATIO: MARGIN_RATIO,
    METRIC_DRAWDOWN_DAILY: DRAWDOWN_DAILY,
    METRIC_DRAWDOWN_MAX: DRAWDOWN_MAX,
    METRIC_DRAWDOWN_WINDOW: DRAWDOWN_WINDOW,
    METRIC_DAILY_PNL: DAILY_PNL,
    METRIC_GROSS_EXPOSURE: GROSS_EXPOSURE,
    METRIC_NET_EXPOSURE: NET_EXPOSURE,
    METRIC_OPEN_POSITIONS: OPEN_POSITIONS,
    METRIC_VAR_95: VAR_95,
    METRIC_VAR_99: VAR_99,
    METRIC_ES_97_5: ES_97_5,
    METRIC_VAR_99_FRACTION: VAR_99_FRACTION,
    METRIC_POSITION_NOTIONAL: NOTIONAL_AT,
    METRIC_CONCENTRATION: CONCENTRATION_AT,
}
"""The slot of every post-trade metric (order-level metrics have none: they are controls)."""

OP_LT: Final = 0
OP_LTE: Final = 1
OP_GT: Final = 2
OP_GTE: Final = 3
OP_CODE: Final[dict[Operator, int]] = {
    OPERATOR_LT: OP_LT,
    OPERATOR_LTE: OP_LTE,
    OPERATOR_GT: OP_GT,
    OPERATOR_GTE: OP_GTE,
}


def slot_of(metric: Metric, op: Operator) -> int:
    """The slot a policy on ``metric`` with operator ``op`` reads: a lower bound (gt/gte) on
    net exposure reads its low case, as :func:`~risk_worker.domain.policies.reader_of`.

    Raises:
        KeyError: an order-level metric (those are controls, not read here).
    """
    if metric is METRIC_NET_EXPOSURE and op is not OPERATOR_LT and op is not OPERATOR_LTE:
        return NET_EXPOSURE_LOW
    return SLOT[metric]


def holds(op: int, value: float, threshold: float) -> bool:
    """``value <op> threshold`` (False for NaN, as the ``operator`` functions)."""
    if op == OP_LTE:
        return value <= threshold
    if op == OP_LT:
        return value < threshold
    if op == OP_GTE:
        return value >= threshold
    return value > threshold


def account_readings(m: AccountMetrics) -> list[float]:
    """The account-level values of ``m`` by slot (units of
    :class:`~risk_worker.domain.risk_metrics.AccountMetrics`; NaN for a VaR not computed)."""
    equity = m.equity
    gross = m.gross_exposure
    leverage = 0.0 if gross == 0.0 else INF if equity <= 0.0 else gross / equity
    used = m.position_margin
    peak = m.peak_equity
    drawdown = (peak - equity) / peak if peak > 0.0 else 0.0
    start = m.day_start_equity
    daily = (start - equity) / start if start > 0.0 else 0.0
    window = m.window_peak_equity
    recent = (window - equity) / window if window > 0.0 else 0.0
    readings = [
        leverage,
        INF if used <= 0.0 else equity / used,
        daily if daily > 0.0 else 0.0,
        drawdown if drawdown > 0.0 else 0.0,
        recent if recent > 0.0 else 0.0,
        equity - start,
        gross,
        m.net_exposure,
        m.net_exposure_low,
        float(m.open_positions),
        NAN,
        NAN,
        NAN,
        NAN,
    ]
    var = m.var
    if var is not None:
        v95, v99, es, fraction = var.var_95, var.var_99, var.es_97_5, var.var_99_fraction(equity)
        readings[VAR_95] = NAN if v95 is None else v95
        readings[VAR_99] = NAN if v99 is None else v99
        readings[ES_97_5] = NAN if es is None else es
        readings[VAR_99_FRACTION] = NAN if fraction is None else fraction
    return readings


def strategy_readings(m: StrategyMetrics) -> list[float]:
    """The values of a strategy's metrics by slot (those a strategy has, see
    :data:`~risk_worker.domain.strategy_metrics.STRATEGY_READERS`; NaN in the others)."""
    equity = m.account_equity
    gross = m.gross_exposure
    leverage = 0.0 if gross == 0.0 else INF if equity <= 0.0 else gross / equity
    pnl = m.realized_pnl + m.unrealized_pnl
    base = m.equity_at_peak
    drawdown = (m.peak_pnl - pnl) / base if base > 0.0 else 0.0
    start = m.day_start_equity
    start_pnl = m.day_start_pnl
    daily = (start_pnl - pnl) / start if start > 0.0 else 0.0
    return [
        leverage,
        NAN,
        daily if daily > 0.0 else 0.0,
        drawdown if drawdown > 0.0 else 0.0,
        NAN,
        pnl - start_pnl,
        gross,
        m.net_exposure,
        m.net_exposure_low,
        float(len(m.position_notional)),
        NAN,
        NAN,
        NAN,
        NAN,
    ]


def symbol_reading(
    slot: int,
    notionals: dict[str, float] | None,
    equity: float,
    symbol: str | None,
    summary: NotionalSummary | None = None,
) -> float:
    """``position_notional`` (:data:`NOTIONAL_AT`) or ``concentration``
    (:data:`CONCENTRATION_AT`) at ``symbol``, the largest position when it is None.

    Args:
        slot: which of the two.
        notionals: symbol → worst-case position notional (quote); None for a compact check's
            metrics, read through ``summary`` instead.
        equity: the equity concentration divides by (the account's, quote).
        symbol: where to read; None for the largest.
        summary: the compact metrics' :class:`NotionalSummary` (when ``notionals`` is None).

    Raises:
        LookupError: ``notionals`` is None and ``summary`` is None or cannot answer for
            ``symbol`` (:meth:`NotionalSummary.at`).
    """
    if notionals is None:
        if summary is None:
            raise LookupError("metrics without position notionals")
        notional = summary.at(symbol)
    elif symbol is None:
        notional = 0.0
        for held in notionals.values():  # max(…, default=0.0), without the builtin's call
            notional = max(notional, held)
    else:
        notional = notionals.get(symbol, 0.0)
    if slot == NOTIONAL_AT:
        return notional
    if notional == 0.0:
        return 0.0
    return INF if equity <= 0.0 else notional / equity
