"""The parameters of the risk math (:class:`RiskConfig`) and the trading day of a timestamp.

``RiskConfig`` is a plain class (``__slots__``), not a msgspec Struct, so this module is
compiled with the domain (:mod:`risk_worker._core`): a check reads its fields at fixed offsets.
It keeps the Struct's constructor (positional order, keywords, defaults), its equality field by
field, its hash (it was frozen) and a repr of every field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from risk_worker.domain.risk_metrics import fields_repr
from risk_worker.domain.types import MS_PER_DAY, utc_day
from risk_worker.domain.var_result import VarConfig

_UTC_DAY: Final = utc_day


def trading_day_of(trading_day: Callable[[int], int], now_ms: int) -> int:
    """``trading_day(now_ms)``: the trading day of a timestamp (ms since epoch → day number).

    The default, :func:`~risk_worker.domain.types.utc_day`, is computed here without calling
    it (whole days since the epoch, the same figure): a check needs the day twice, and a call
    from the compiled core into an interpreted function costs about as much as the rest of
    the day's bookkeeping.
    """
    if trading_day is _UTC_DAY:
        return now_ms // MS_PER_DAY
    return trading_day(now_ms)


_CONFIG_FIELDS = (
    "default_margin_rate",
    "margin_rates",
    "mark_max_age_ms",
    "pending_ttl_ms",
    "trading_day",
    "drawdown_window_ms",
    "var",
)


class RiskConfig:
    """Parameters of the risk math (built from settings). Never changed once made, as the
    frozen Struct it was: the attributes are ``Final`` (mypy refuses an assignment; compiled,
    they are read-only). Compares and hashes by value (a hash raises TypeError while
    ``margin_rates`` is a dict, as the Struct's did).

    Attributes:
        default_margin_rate: initial margin rate (fraction of notional) for symbols without an
            override; 0.10 means 10x maximum leverage per position.
        margin_rates: per-symbol initial margin rate overrides (a new empty dict by default).
        mark_max_age_ms: a mark older than this (by receive time) is stale.
        pending_ttl_ms: how long an approved order's reservation lasts without fills.
        trading_day: the trading day of a timestamp (ms since epoch → day number), the day
            changing at the configured reset (``RISK_DAY_RESET``); by default at 00:00 UTC
            (:func:`~risk_worker.domain.types.utc_day`). Pure: it reads no clock or file.
        drawdown_window_ms: the window of ``drawdown_window`` (ms; ``RISK_DRAWDOWN_WINDOW``).
        var: the historical VaR's parameters (:class:`~risk_worker.domain.var_result.VarConfig`;
            a new default one by default).
    """

    __slots__ = _CONFIG_FIELDS

    default_margin_rate: Final[float]
    margin_rates: Final[dict[str, float]]
    mark_max_age_ms: Final[int]
    pending_ttl_ms: Final[int]
    trading_day: Final[Callable[[int], int]]
    drawdown_window_ms: Final[int]
    var: Final[VarConfig]

    def __init__(
        self,
        default_margin_rate: float = 0.10,
        margin_rates: dict[str, float] | None = None,
        mark_max_age_ms: int = 30_000,
        pending_ttl_ms: int = 60_000,
        trading_day: Callable[[int], int] = utc_day,
        drawdown_window_ms: int = 300_000,
        var: VarConfig | None = None,
    ) -> None:
        self.default_margin_rate = default_margin_rate
        self.margin_rates = {} if margin_rates is None else margin_rates
        self.mark_max_age_ms = mark_max_age_ms
        self.pending_ttl_ms = pending_ttl_ms
        self.trading_day = trading_day
        self.drawdown_window_ms = drawdown_window_ms
        self.var = VarConfig() if var is None else var

    def _values(self) -> tuple[object, ...]:
        return (
            self.default_margin_rate,
            self.margin_rates,
            self.mark_max_age_ms,
            self.pending_ttl_ms,
            self.trading_day,
            self.drawdown_window_ms,
            self.var,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RiskConfig):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return fields_repr(self, _CONFIG_FIELDS)

    def margin_rate(self, symbol: str) -> float:
        """Initial margin rate of ``symbol`` (fraction)."""
        return self.margin_rates.get(symbol, self.default_margin_rate)
