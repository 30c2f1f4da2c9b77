"""When the monitor publishes an account's ``risk.metrics``: its figures moved, or its turn came.

Pure: no clock (the caller passes ``now_ms``), no I/O. The rule (subjects.md §3.8) compares an
account's message with the one last published for it. It is published when:

* none was published yet (a new account, or this instance has just become the lease holder);
* the caller forces it (the evaluation raised an alert or a trip);
* a discrete field differs: ``risk_level``, ``trading_state``, ``stale_marks``,
  ``open_positions``, ``pending_orders``, ``worker_id``, the symbols, policies or strategies a
  section holds, a figure becoming null or a number, a strategy's risk level or state;
* a limit utilization crosses 1.0 (a violation starts or ends);
* a figure moved by more than ``threshold`` (``RISK_METRICS_CHANGE_THRESHOLD``, a fraction) of
  its scale. The scale of a money figure (quote: equity, balance, PnLs, margins, exposures,
  peaks, VaR, ES, a strategy's money figures) is the largest of its two values, the account's
  equity and 1 quote unit, so a figure near zero (unrealized PnL of a flat book) moves it only
  by a fraction of the account's size; the scale of a ratio or fraction (margin ratio,
  leverage, drawdowns, concentrations, utilizations) is the larger of its two values and 1;
* its turn came: at least every ``RISK_METRICS_MAX_INTERVAL``. Each account has a phase in
  [0, max interval) from a hash of its id (CRC-32, the same on every instance and run); it is
  due when the time passed a point ``phase + k × max interval`` since its last publication, so
  the forced republishes of N unchanged accounts spread over the interval (N / max interval per
  second), whatever published them last. A clock that went back counts as due.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from math import dist, isnan
from operator import itemgetter
from typing import Any

import msgspec

from risk_worker.wire.outbound import RiskMetricsMsg
from risk_worker.wire.strategies import StrategyMetricsMsg

_SKIP = "skip"  # not compared
_EXACT = "exact"  # any difference
_MONEY = "money"  # quote, on the account's scale
_RATIO = "ratio"  # fraction or ratio, on the scale 1
_MONEY_OR_NULL = "money or null"
_RATIO_OR_NULL = "ratio or null"
_UTIL = "utilizations"  # dict of ratios; crossing 1.0 counts
_RATIOS = "ratios"  # dict of ratios
_MONIES = "monies"  # dict of money figures
_STRATEGIES = "strategies"  # dict of StrategyMetricsMsg

_METRICS_KINDS = {
    "account_id": _EXACT,
    "timestamp": _SKIP,
    "equity": _MONEY,
    "balance": _MONEY,
    "unrealized_pnl": _MONEY,
    "daily_pnl": _MONEY,
    "margin_used": _MONEY,
    "available_margin": _MONEY,
    "margin_ratio": _RATIO_OR_NULL,
    "leverage": _RATIO_OR_NULL,
    "gross_exposure": _MONEY,
    "net_exposure": _MONEY,
    "drawdown_daily": _RATIO,
    "drawdown_max": _RATIO,
    "peak_equity": _MONEY,
    "day_start_equity": _MONEY,
    "drawdown_window": _RATIO,
    "window_peak_equity": _MONEY,
    "position_concentration": _RATIOS,
    "limit_utilization": _UTIL,
    "open_positions": _EXACT,
    "pending_orders": _EXACT,
    "risk_level": _EXACT,
    "trading_state": _EXACT,
    "stale_marks": _EXACT,
    "worker_id": _EXACT,
    "var_95": _MONEY_OR_NULL,
    "var_99": _MONEY_OR_NULL,
    "es_97_5": _MONEY_OR_NULL,
    "var_99_fraction": _RATIO_OR_NULL,
    "strategies": _STRATEGIES,
}
"""How each field of :class:`RiskMetricsMsg` is compared (a new field must be classified: the
import fails otherwise)."""

_STRATEGY_KINDS = {
    "gross_exposure": _MONEY,
    "net_exposure": _MONEY,
    "realized_pnl": _MONEY,
    "unrealized_pnl": _MONEY,
    "pnl": _MONEY,
    "daily_pnl": _MONEY,
    "peak_pnl": _MONEY,
    "drawdown_max": _RATIO,
    "drawdown_daily": _RATIO,
    "leverage": _RATIO_OR_NULL,
    "position_notional": _MONIES,
    "open_positions": _EXACT,
    "pending_orders": _EXACT,
    "limit_utilization": _UTIL,
    "risk_level": _EXACT,
    "trading_state": _EXACT,
    "stale_marks": _EXACT,
}
"""How each field of :class:`StrategyMetricsMsg` is compared."""

_astuple = msgspec.structs.astuple


def _group(fields: tuple[str, ...], kinds: dict[str, str], kind: str) -> Callable[[Any], Any]:
    """A getter of the ``kind`` fields out of a struct's field tuple (as a tuple)."""
    at = [i for i, f in enumerate(fields) if kinds[f] == kind]
    return itemgetter(*at) if len(at) > 1 else lambda t: tuple(t[i] for i in at)


_FIELDS = RiskMetricsMsg.__struct_fields__
_EXACTS, _MONEYS, _RATIOS_OF, _MONEYS_OR_NULL, _RATIOS_OR_NULL = (
    _group(_FIELDS, _METRICS_KINDS, k)
    for k in (_EXACT, _MONEY, _RATIO, _MONEY_OR_NULL, _RATIO_OR_NULL)
)
_S_FIELDS = StrategyMetricsMsg.__struct_fields__
_S_EXACTS, _S_MONEYS, _S_RATIOS = (
    _group(_S_FIELDS, _STRATEGY_KINDS, k) for k in (_EXACT, _MONEY, _RATIO)
)


def _close(a: float | None, b: float | None, scale: float, threshold: float) -> bool:
    """Whether ``a`` and ``b`` differ by at most ``threshold`` × the larger of |a|, |b| and
    ``scale`` (both null counts as equal; NaN never as close)."""
    if a is None or b is None:
        return a is b
    return abs(a - b) <= threshold * max(abs(a), abs(b), scale)


def _near(xs: Sequence[Any], ys: Sequence[Any], scale: float, t: float) -> bool:
    """:func:`_close` for every pair of ``xs`` and ``ys`` (same length). The shortcut, one call
    in C: the Euclidean distance within ``t`` × ``scale`` bounds every difference by it (NaN
    and infinity fail it; a null raises); the pairwise rule only when it does not settle it."""
    if xs == ys:
        return True
    try:
        if dist(xs, ys) <= t * scale:
            return True
    except TypeError:  # a null among them
        pass
    return all(map(_close, xs, ys, repeat(scale), repeat(t)))


def _same_section(a: Any, b: Any, scale: float, t: float, limits: bool = False) -> bool:
    """Whether two dict sections hold the same keys with values within the rule; ``limits``:
    no value crosses 1.0 (a limit utilization)."""
    if a is None or b is None:
        return a is b
    xs = tuple(a.values())
    if tuple(a) == tuple(b):
        ys = tuple(b.values())
    elif a.keys() == b.keys():  # the same keys in another order
        ys = tuple(b[k] for k in a)
    else:
        return False
    if xs == ys:
        return True
    if limits and not _same_side(xs, ys):
        return False
    return _near(xs, ys, scale, t)


def _same_side(xs: tuple[Any, ...], ys: tuple[Any, ...]) -> bool:
    """Whether each utilization is over 1.0 (beyond its limit) on both sides or neither."""
    try:
        if max(xs) <= 1.0 >= max(ys):  # neither beyond any limit (both non-empty here)
            return True
    except TypeError:  # a null (infinite) among them
        pass
    return [x is None or x > 1.0 for x in xs] == [y is None or y > 1.0 for y in ys]


def _same_strategies(a: Any, b: Any, money: float, t: float) -> bool:
    """Whether two ``strategies`` sections hold the same strategies with figures within the
    rule (money figures on the account's scale)."""
    if a is None or b is None or a.keys() != b.keys():
        return a is b
    for k, sa in a.items():
        x, y = _astuple(sa), _astuple(b[k])
        if not (
            _S_EXACTS(x) == _S_EXACTS(y)
            and _near(_S_MONEYS(x), _S_MONEYS(y), money, t)
            and _near(_S_RATIOS(x), _S_RATIOS(y), 1.0, t)
            and _close(sa.leverage, b[k].leverage, 1.0, t)
            and _same_section(sa.position_notional, b[k].position_notional, money, t)
            and _same_section(sa.limit_utilization, b[k].limit_utilization, 1.0, t, True)
        ):
            return False
    return True


def metrics_moved(before: RiskMetricsMsg, after: RiskMetricsMsg, threshold: float) -> bool:
    """Whether ``after`` differs from ``before`` (the last published) by more than the rule
    allows (the module's docstring); ``timestamp`` is ignored.

    Args:
        threshold: the fraction of a figure's scale it may move unpublished (0: any change).
    """
    x, y = _astuple(before), _astuple(after)
    if _EXACTS(x) != _EXACTS(y):
        return True
    money = max(abs(before.equity), abs(after.equity), 1.0)
    if isnan(money):  # NaN equity: always publish
        return True
    t = threshold
    return not (
        _near(_MONEYS(x), _MONEYS(y), money, t)
        and _near(_RATIOS_OF(x), _RATIOS_OF(y), 1.0, t)
        and _near(_MONEYS_OR_NULL(x), _MONEYS_OR_NULL(y), money, t)
        and _near(_RATIOS_OR_NULL(x), _RATIOS_OR_NULL(y), 1.0, t)
        and _same_section(before.position_concentration, after.position_concentration, 1.0, t)
        and _same_section(before.limit_utilization, after.limit_utilization, 1.0, t, True)
        and _same_strategies(before.strategies, after.strategies, money, t)
    )


def phase_ms(account_id: str, period_ms: int) -> int:
    """The account's phase in [0, ``period_ms``): CRC-32 of its id (stable across runs)."""
    return zlib.crc32(account_id.encode()) % max(1, period_ms)


def turn_came(last_ms: int, now_ms: int, phase: int, period_ms: int) -> bool:
    """Whether a point ``phase + k × period_ms`` lies in (``last_ms``, ``now_ms``], or the clock
    went back (``now_ms`` < ``last_ms``)."""
    period = max(1, period_ms)
    return now_ms < last_ms or (now_ms - phase) // period > (last_ms - phase) // period


class MetricsGate:
    """Decides, account by account, whether this pass publishes its ``risk.metrics``.

    Holds the last published message and time of each account (only the lease holder
    publishes: :meth:`reset` when this instance is not the holder, so its next term starts by
    publishing every account).

    Args:
        threshold: ``RISK_METRICS_CHANGE_THRESHOLD`` (fraction, ≥ 0).
        max_interval_ms: ``RISK_METRICS_MAX_INTERVAL`` in ms (> 0).
    """

    def __init__(self, threshold: float, max_interval_ms: int) -> None:
        self.threshold = threshold
        self.max_interval_ms = max(1, max_interval_ms)
        self._last: dict[str, tuple[RiskMetricsMsg, int, int]] = {}

    def __len__(self) -> int:
        return len(self._last)

    def due(self, msg: RiskMetricsMsg, now_ms: int, force: bool = False) -> bool:
        """Whether ``msg`` (its account's metrics at ``now_ms``, ms) is to be published: never
        published, ``force``, moved (:func:`metrics_moved`) or its turn came (:func:`turn_came`).
        Records nothing: call :meth:`published` once it is sent."""
        last = self._last.get(msg.account_id)
        if last is None or force:
            return True
        before, at, phase = last
        return turn_came(at, now_ms, phase, self.max_interval_ms) or metrics_moved(
            before, msg, self.threshold
        )

    def published(self, msg: RiskMetricsMsg, now_ms: int) -> None:
        """Record that ``msg`` was published at ``now_ms`` (ms)."""
        last = self._last.get(msg.account_id)
        phase = phase_ms(msg.account_id, self.max_interval_ms) if last is None else last[2]
        self._last[msg.account_id] = (msg, now_ms, phase)

    def last(self, account_id: str) -> RiskMetricsMsg | None:
        """The account's message last recorded as published, None when there is none."""
        found = self._last.get(account_id)
        return None if found is None else found[0]

    def retain(self, account_ids: Iterable[str]) -> None:
        """Forget the accounts not in ``account_ids`` (no longer in the book)."""
        keep = set(account_ids)
        for gone in [a for a in self._last if a not in keep]:
            del self._last[gone]

    def reset(self) -> None:
        """Forget everything: the next pass publishes every account."""
        self._last.clear()
