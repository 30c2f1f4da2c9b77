"""A strategy's risk metrics within its account (:mod:`~risk_worker.domain.strategy_metrics`
computes them and defines the policy readers on them).

A plain class (``__slots__``), not a msgspec Struct, so this module is compiled with the domain
(:mod:`risk_worker._core`) and it is a native class: a check of an order naming a strategy
builds two and reads their fields, which a native class does at fixed offsets (a Struct's
field, read from the compiled core, is an attribute look-up by name). It keeps the Struct's
constructor (positional order, keywords, the default), its equality field by field, and a repr
of every field; unhashable, as the Struct (not frozen) was.
"""

from __future__ import annotations

from risk_worker.domain.risk_metrics import INF, fields_repr

STRATEGY_METRICS_FIELDS = (
    "strategy_id",
    "gross_exposure",
    "net_exposure",
    "net_exposure_low",
    "position_notional",
    "pending_orders",
    "realized_pnl",
    "unrealized_pnl",
    "peak_pnl",
    "equity_at_peak",
    "day_start_pnl",
    "day_start_equity",
    "account_equity",
    "stale_symbols",
)


class StrategyMetrics:  # noqa: PLW1641 (unhashable, as the Struct was)
    """Risk metrics of one strategy of one account at one moment (quote unless stated).

    ``position_notional`` maps each symbol the strategy holds or has reserved to its worst-case
    notional; ``stale_symbols`` names those valued without a fresh mark; ``realized_pnl`` is
    after fees; ``account_equity`` is the account's equity at the same moment.
    """

    __slots__ = STRATEGY_METRICS_FIELDS

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
    stale_symbols: tuple[str, ...]

    def __init__(
        self,
        strategy_id: str,
        gross_exposure: float,
        net_exposure: float,
        net_exposure_low: float,
        position_notional: dict[str, float],
        pending_orders: int,
        realized_pnl: float,
        unrealized_pnl: float,
        peak_pnl: float,
        equity_at_peak: float,
        day_start_pnl: float,
        day_start_equity: float,
        account_equity: float,
        stale_symbols: tuple[str, ...] = (),
    ) -> None:
        self.strategy_id = strategy_id
        self.gross_exposure = gross_exposure
        self.net_exposure = net_exposure
        self.net_exposure_low = net_exposure_low
        self.position_notional = position_notional
        self.pending_orders = pending_orders
        self.realized_pnl = realized_pnl
        self.unrealized_pnl = unrealized_pnl
        self.peak_pnl = peak_pnl
        self.equity_at_peak = equity_at_peak
        self.day_start_pnl = day_start_pnl
        self.day_start_equity = day_start_equity
        self.account_equity = account_equity
        self.stale_symbols = stale_symbols

    def _values(self) -> tuple[object, ...]:
        return (
            self.strategy_id,
            self.gross_exposure,
            self.net_exposure,
            self.net_exposure_low,
            self.position_notional,
            self.pending_orders,
            self.realized_pnl,
            self.unrealized_pnl,
            self.peak_pnl,
            self.equity_at_peak,
            self.day_start_pnl,
            self.day_start_equity,
            self.account_equity,
            self.stale_symbols,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StrategyMetrics):
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        return fields_repr(self, STRATEGY_METRICS_FIELDS)

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
