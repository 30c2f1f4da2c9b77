"""A strategy's risk metrics within its account (:mod:`~risk_worker.domain.strategy_metrics`
computes them and defines the policy readers on them).

A msgspec Struct, so this module stays interpreted in the compiled decision core
(:mod:`risk_worker._core`): a compiled module would lose the field types msgspec reads from a
Struct's annotations.
"""

from __future__ import annotations

import msgspec

from risk_worker.domain.risk_metrics import INF


class StrategyMetrics(msgspec.Struct, gc=False):
    """Risk metrics of one strategy of one account at one moment (quote unless stated).

    ``position_notional`` maps each symbol the strategy holds or has reserved to its worst-case
    notional; ``stale_symbols`` names those valued without a fresh mark; ``realized_pnl`` is
    after fees; ``account_equity`` is the account's equity at the same moment.
    """

    strategy_id: str
    gross_exposure: float
    net_exposure: float
    net_exposure_low: float
    position_notional: dict[str, float]
    pending_orders: int
    realized_pnl: float
    unrealized_pnl: float
    peak_pnl: float
    equity_at_peak: float
    day_start_pnl: float
    day_start_equity: float
    account_equity: float
    stale_symbols: tuple[str, ...] = ()

    @property
    def pnl(self) -> float:
        """Cumulative PnL: realized (after fees) + unrealized."""
        return self.realized_pnl + self.unrealized_pnl

    @property
    def open_positions(self) -> int:
        """Symbols the strategy holds or has reserved (count)."""
        return len(self.position_notional)

    @property
    def daily_pnl(self) -> float:
        """PnL − day-start PnL."""
        return self.pnl - self.day_start_pnl

    @property
    def drawdown_max(self) -> float:
        """(peak PnL − PnL) / the account's equity at the peak, fraction ≥ 0; 0 while that
        equity is not positive."""
        base = self.equity_at_peak
        drawdown = (self.peak_pnl - self.pnl) / base if base > 0.0 else 0.0
        return drawdown if drawdown > 0.0 else 0.0

    @property
    def drawdown_daily(self) -> float:
        """max(0, (day-start PnL − PnL) / day-start equity), fraction; 0 while that equity is
        not positive."""
        base = self.day_start_equity
        drawdown = (self.day_start_pnl - self.pnl) / base if base > 0.0 else 0.0
        return drawdown if drawdown > 0.0 else 0.0

    @property
    def leverage(self) -> float:
        """gross exposure / the account's equity; ``inf`` when that is ≤ 0 with exposure."""
        if self.gross_exposure == 0.0:
            return 0.0
        return INF if self.account_equity <= 0.0 else self.gross_exposure / self.account_equity

    def concentration(self, symbol: str | None = None) -> float:
        """The strategy's position notional in ``symbol`` (the largest when None) / the
        account's equity; 0 without exposure, ``inf`` when that equity is ≤ 0 with exposure."""
        if symbol is None:
            notional = max(self.position_notional.values(), default=0.0)
        else:
            notional = self.position_notional.get(symbol, 0.0)
        if notional == 0.0:
            return 0.0
        return INF if self.account_equity <= 0.0 else notional / self.account_equity
