"""Account risk metrics: the metrics of one account and their formulas.

The parameters of the math are :class:`~risk_worker.domain.risk_config.RiskConfig`. Money is
in quote currency, quantities in base units, ratios are fractions (0.25 = 25 %).
Formulas (standard margin-account definitions, as in the issue that specified this service;
the worst case of the reservations from issue 10):

Per symbol, with q the held signed quantity, B / S the base quantity of the live pending BUYs /
SELLs (unsigned) and v the valuation price (the mark; without one the position's entry price,
or for a symbol held only through reservations their highest price):

- worst-case values: high = (q + B) × v (every pending BUY fills, no SELL) and
  low = (q − S) × v (every pending SELL fills, no BUY); any partial filling lies between
- position notional = max(|high|, |low|), the larger of the two worst cases

Over the account:

- unrealized PnL = Σ q × (mark − entry) (held positions only)
- equity = balance + unrealized PnL
- gross exposure = Σ position notional; net exposure: high = Σ high, low = Σ low
- margin used = Σ position notional × initial margin rate (reservations included once, here)
- available margin = equity − margin used
- margin ratio = equity / margin used (infinite, ``null`` on the wire, when margin used is 0)
- leverage = gross exposure / equity (infinite when equity ≤ 0 with exposure)
- concentration[symbol] = position notional / equity
- open positions = symbols held or with live reservations
- drawdown_max = (peak − equity) / peak; drawdown_daily = max(0, (day start − equity) / day start)
- drawdown_window = max(0, (window peak − equity) / window peak), the window peak the highest
  equity of the last ``RISK_DRAWDOWN_WINDOW`` s (:mod:`~risk_worker.domain.equity_window`)
- daily PnL = equity − day-start equity

A symbol with no mark yet is valued as above and flags ``stale_marks``, as does a mark older
than the configured maximum age.

``AccountMetrics`` is a plain class (``__slots__``), not a msgspec Struct, so this module is
compiled with the domain (:mod:`risk_worker._core`) and it is a native class: a check creates
two and reads their fields and properties many times, which a native class does at fixed
offsets with unboxed floats (a Struct field is a descriptor looked up by name, its float
boxed). It keeps the Struct's constructor (positional order, keywords, defaults), its equality
field by field and a repr of every field.
"""

from __future__ import annotations

import math
from typing import Final

from risk_worker.domain.notional_summary import NotionalSummary
from risk_worker.domain.var_result import VarResult

INF: Final = math.inf
METRICS_FIELDS = (
    "equity",
    "balance",
    "unrealized_pnl",
    "gross_exposure",
    "net_exposure",
    "net_exposure_low",
    "position_margin",
    "pending_notional",
    "pending_margin",
    "pending_orders",
    "open_positions",
    "position_notional",
    "stale_symbols",
    "peak_equity",
    "day_start_equity",
    "window_peak_equity",
    "var",
    "notional_summary",
)
"""``AccountMetrics``'s fields in constructor order."""


def fields_repr(obj: object, fields: tuple[str, ...]) -> str:
    """``Class(field=value, ...)`` of every field, as a Struct's repr (the domain's plain
    classes that were Structs)."""
    values = ", ".join(f"{name}={getattr(obj, name)!r}" for name in fields)
    return f"{type(obj).__name__}({values})"


class AccountMetrics:  # noqa: PLW1641 (unhashable on purpose: see the last paragraph)
    """Risk metrics of one account at one moment (pre- or post-trade).

    Stored sums are in quote currency; the ratios are properties derived from them. Exposures
    count the live reservations as the worst case of them filling (module docstring):
    ``net_exposure`` is the high case (every pending BUY fills), ``net_exposure_low`` the low
    one (every pending SELL fills); ``position_margin`` is the margin of the worst-case
    positions, reservations included. ``pending_notional`` and ``pending_margin`` are the
    reservations' own risk-increasing notional and margin, for information: they are already
    in the exposures and margin, not added again. ``position_notional`` maps each symbol held
    or reserved to its worst-case notional; a compact check's metrics have None there and a
    ``notional_summary`` instead (:mod:`~risk_worker.domain.notional_summary`; read through
    :meth:`notional`, :meth:`held_notionals`, which raise when the dict was not built);
    ``stale_symbols`` names those valued without a
    fresh mark; ``window_peak_equity`` is the highest equity of the drawdown window (quote; 0,
    no window, only where built by hand); ``var`` the historical VaR when computed (monitor;
    checks with VaR policies).

    Compares field by field. Not hashable, as the Struct was not (it was not frozen): a class
    defining ``__eq__`` without ``__hash__`` gets none, compiled or not.
    """

    __slots__ = METRICS_FIELDS

    equity: float
    balance: float
    unrealized_pnl: float
    gross_exposure: float
    net_exposure: float
    net_exposure_low: float
    position_margin: float
    pending_notional: float
    pending_margin: float
    pending_orders: int
    open_positions: int
    position_notional: dict[str, float] | None
    stale_symbols: tuple[str, ...]
    peak_equity: float
    day_start_equity: float
    window_peak_equity: float
    var: VarResult | None
    notional_summary: NotionalSummary | None

    def __init__(
        self,
        equity: float,
        balance: float,
        unrealized_pnl: float,
        gross_exposure: float,
        net_exposure: float,
        net_exposure_low: float,
        position_margin: float,
        pending_notional: float,
        pending_margin: float,
        pending_orders: int,
        open_positions: int,
        position_notional: dict[str, float] | None,
        stale_symbols: tuple[str, ...],
        peak_equity: float,
        day_start_equity: float,
        window_peak_equity: float = 0.0,
        var: VarResult | None = None,
        notional_summary: NotionalSummary | None = None,
    ) -> None:
        self.equity = equity
        self.balance = balance
        self.unrealized_pnl = unrealized_pnl
        self.gross_exposure = gross_exposure
        self.net_exposure = net_exposure
        self.net_exposure_low = net_exposure_low
        self.position_margin = position_margin
        self.pending_notional = pending_notional
        self.pending_margin = pending_margin
        self.pending_orders = pending_orders
        self.open_positions = open_positions
        self.position_notional = position_notional
        self.stale_symbols = stale_symbols
        self.peak_equity = peak_equity
        self.day_start_equity = day_start_equity
        self.window_peak_equity = window_peak_equity
        self.var = var
        self.notional_summary = notional_summary

    def _values(self) -> tuple[object, ...]:
        return (
            self.equity,
            self.balance,
            self.unrealized_pnl,
            self.gross_exposure,
            self.net_exposure,
            self.net_exposure_low,
            self.position_margin,
            self.pending_notional,
            self.pending_margin,
            self.pending_orders,
            self.open_positions,
            self.position_notional,
            self.stale_symbols,
            self.peak_equity,
            self.day_start_equity,
            self.window_peak_equity,
            self.var,
            self.notional_summary,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccountMetrics):
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        return fields_repr(self, METRICS_FIELDS)

    @property
    def stale_marks(self) -> bool:
        """True when an open position has no mark or only one older than the maximum age."""
        return bool(self.stale_symbols)

    @property
    def margin_used(self) -> float:
        """Margin of the worst-case positions, reservations included (quote)."""
        return self.position_margin

    @property
    def net_exposure_extreme(self) -> float:
        """The net exposure case farther from 0 (quote): high when |high| ≥ |low|, else low."""
        high, low = self.net_exposure, self.net_exposure_low
        return high if abs(high) >= abs(low) else low

    @property
    def available_margin(self) -> float:
        """equity − margin used (quote); negative when under-margined."""
        return self.equity - self.margin_used

    @property
    def margin_ratio(self) -> float:
        """equity / margin used; ``inf`` when no margin is used."""
        used = self.position_margin
        return INF if used <= 0.0 else self.equity / used

    @property
    def leverage(self) -> float:
        """gross exposure / equity; ``inf`` when equity ≤ 0 with exposure."""
        exposure = self.gross_exposure
        if exposure == 0.0:
            return 0.0
        return INF if self.equity <= 0.0 else exposure / self.equity

    @property
    def drawdown_max(self) -> float:
        """(peak − equity) / peak, fraction ≥ 0; 0 while the peak is not positive."""
        peak = self.peak_equity
        drawdown = (peak - self.equity) / peak if peak > 0.0 else 0.0
        return drawdown if drawdown > 0.0 else 0.0  # max(0, drawdown), without a call

    @property
    def drawdown_daily(self) -> float:
        """max(0, (day start − equity) / day start), fraction; 0 while day start ≤ 0."""
        start = self.day_start_equity
        drawdown = (start - self.equity) / start if start > 0.0 else 0.0
        return drawdown if drawdown > 0.0 else 0.0  # max(0, drawdown), without a call

    @property
    def drawdown_window(self) -> float:
        """(window peak − equity) / window peak, fraction ≥ 0; 0 while it is not positive."""
        peak = self.window_peak_equity
        return max(0.0, (peak - self.equity) / peak) if peak > 0.0 else 0.0

    @property
    def daily_pnl(self) -> float:
        """equity − day-start equity (quote)."""
        return self.equity - self.day_start_equity

    def held_notionals(self) -> dict[str, float]:
        """``position_notional``: symbol → worst-case notional (quote).

        Raises:
            LookupError: these are a compact check's metrics, built without the dict.
        """
        held = self.position_notional
        if held is None:
            raise LookupError("a compact check's metrics hold no per-symbol notionals")
        return held

    def notional(self, symbol: str | None = None) -> float:
        """The worst-case position notional of ``symbol`` (quote; 0.0 when neither held nor
        reserved), or the largest when None (0.0 without any).

        Raises:
            LookupError: compact metrics asked for a symbol their summary does not hold.
        """
        held = self.position_notional
        if held is None:
            summary = self.notional_summary
            if summary is None:
                raise LookupError("metrics without position notionals")
            return summary.at(symbol)
        if symbol is None:
            return max(held.values(), default=0.0)
        return held.get(symbol, 0.0)

    def concentration(self, symbol: str | None = None) -> float:
        """Position notional / equity of ``symbol``, or the largest when ``symbol`` is None.

        0 without exposure; ``inf`` when equity ≤ 0 with exposure.

        Raises:
            LookupError: as :meth:`notional`.
        """
        notional = self.notional(symbol)
        if notional == 0.0:
            return 0.0
        return INF if self.equity <= 0.0 else notional / self.equity

    def concentrations(self) -> dict[str, float]:
        """symbol → concentration for every open position (see :meth:`concentration`).

        Raises:
            LookupError: as :meth:`held_notionals`.
        """
        held = self.held_notionals()
        equity = self.equity
        if 0.0 < equity < INF:  # notional / equity, which is also 0 for a zero notional
            return {s: notional / equity for s, notional in held.items()}
        return {s: self.concentration(s) for s in held}
