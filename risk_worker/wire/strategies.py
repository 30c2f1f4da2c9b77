"""The ``strategies`` section of ``risk.metrics``: one strategy's risk within its account.

Money in quote currency, ratios as fractions of the account's equity (a strategy has no capital
of its own: :mod:`risk_worker.domain.strategy_metrics`), null where not finite.
"""

from __future__ import annotations

import msgspec

from risk_worker.domain.reports import StrategyReport
from risk_worker.domain.types import RiskLevel, TradingState
from risk_worker.wire.numbers import finite, finite_values


class StrategyMetricsMsg(msgspec.Struct, frozen=True, gc=False):
    """One strategy of an account in ``risk.metrics`` (keyed by its strategy id there).

    ``pnl`` = ``realized_pnl`` (after fees) + ``unrealized_pnl``; ``peak_pnl`` its high-water
    mark (≥ 0); ``drawdown_max`` = (peak_pnl − pnl) / the account's equity at that peak;
    ``drawdown_daily`` = max(0, (day-start PnL − pnl) / the account's day-start equity);
    ``daily_pnl`` = pnl − day-start PnL; ``leverage`` = gross exposure / the account's equity;
    ``net_exposure`` the worst case farther from 0; ``position_notional`` per symbol (worst
    case of the strategy's reservations included); ``trading_state`` the state its orders get
    (the most severe of global, account, the strategy's own and its automatic trip).
    """

    gross_exposure: float
    net_exposure: float
    realized_pnl: float
    unrealized_pnl: float
    pnl: float
    daily_pnl: float
    peak_pnl: float
    drawdown_max: float
    drawdown_daily: float
    leverage: float | None
    position_notional: dict[str, float]
    open_positions: int
    pending_orders: int
    limit_utilization: dict[str, float | None]
    risk_level: RiskLevel
    trading_state: TradingState
    stale_marks: bool


def strategies_msg(reports: dict[str, StrategyReport]) -> dict[str, StrategyMetricsMsg] | None:
    """The ``strategies`` section from the monitor's strategy reports; None when there are
    none (the account has no strategy books)."""
    if not reports:
        return None
    out: dict[str, StrategyMetricsMsg] = {}
    for strategy_id, r in reports.items():
        m = r.metrics
        high, low = m.net_exposure, m.net_exposure_low
        out[strategy_id] = StrategyMetricsMsg(
            m.gross_exposure,
            high if abs(high) >= abs(low) else low,
            m.realized_pnl,
            m.unrealized_pnl,
            m.pnl,
            m.daily_pnl,
            m.peak_pnl,
            m.drawdown_max,
            m.drawdown_daily,
            finite(m.leverage),
            m.position_notional,
            m.open_positions,
            m.pending_orders,
            finite_values(r.utilization),
            r.risk_level,
            r.trading_state,
            bool(m.stale_symbols),
        )
    return out
