"""Per-symbol price samples at fixed interval boundaries, and their aligned returns.

The rules of historical VaR's input (issue 13), which :mod:`risk_worker.domain.var` uses:

- a sample is the last mark at or before an interval boundary (a multiple of the sample
  interval, ms since epoch); for seeded bars, each bar's close at its timestamp;
- a return r = ln(sample / previous sample) exists only between consecutive boundaries: a gap
  (a boundary without a sample) breaks the series, there is no return across it;
- at most ``window`` samples are kept per symbol (the latest);
- the scenarios of a set of symbols are the boundaries at which *every* one of them has a
  return, the latest ``window`` of them.

Sampling (:meth:`ReturnHistory.carry`): when a symbol's mark is replaced, and at every boundary
for the symbols that had no tick since (:meth:`ReturnHistory.sample_marks`), the mark in force
is recorded at each boundary from its receive time up to the present (worker clock).

Each symbol's e^r − 1 by boundary is computed once per new sample of it; the aligned vectors
of a set of symbols are cached per set and rebuilt at sampling time
(:meth:`ReturnHistory.stale_sets`, :meth:`ReturnHistory.refresh`), so a check reads them
without building anything; a set first seen, or one of whose symbols changed since and not yet
rebuilt, is built on demand.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Final, NamedTuple

from risk_worker.domain.bounds import is_identifier, is_millis, is_price
from risk_worker.domain.mark import Mark


class Aligned(NamedTuple):
    """The aligned growth of a set of symbols. A class, not a bare tuple, so that the object
    :meth:`ReturnHistory.aligned` caches is the one it returns in the compiled core too (mypyc
    passes fixed-length tuples unboxed, rebuilding them): the scenario cache of
    :func:`~risk_worker.domain.var.scenario_quantiles` is kept by identity."""

    symbols: tuple[str, ...]
    """The symbols, sorted."""
    vectors: tuple[list[float], ...]
    """For each symbol the list of e^r − 1 at the common scenario boundaries, oldest first."""
    n: int
    """The number of scenarios."""
    versions: tuple[int, ...]
    """The symbols' versions it was built from."""
    ascending: list[float]
    """For a single symbol its vector sorted ascending, else empty."""
    largest_growth: tuple[float, ...]
    """For each symbol the largest |e^r − 1| of its vector, 0 when n = 0."""


ScenarioCache = tuple[Aligned, list[float], list[float], float, tuple[float, float, float]]
"""An account's last scenario P&Ls (:func:`~risk_worker.domain.var.scenario_quantiles`): (the
aligned vectors; the weight of each symbol the P&Ls were computed with; the P&Ls in scenario
order; the largest weight since the last full computation; the P&Ls' ranks ⌊0.05·n⌋ and
⌊0.01·n⌋ and the mean of the ⌈0.025·n⌉ worst)."""

MAX_CACHED_SETS: Final = 4_096
"""Most symbol sets whose aligned vectors are kept (the cache is emptied beyond)."""


class ReturnHistory:
    """Samples per symbol at multiples of ``interval_ms``, the latest ``window`` of each.

    Args:
        interval_ms: the sample interval (ms, ``RISK_VAR_SAMPLE_INTERVAL`` × 1000), > 0.
        window: the most samples kept per symbol and the most scenarios (count, > 1).

    Raises:
        ValueError: ``interval_ms`` ≤ 0 or ``window`` < 2.
    """

    __slots__ = (
        "_aligned",
        "_growth",
        "_prices",
        "_slots",
        "_versions",
        "interval_ms",
        "kept",
        "scenario_cache",
        "version",
        "window",
    )

    def __init__(self, interval_ms: int = 60_000, window: int = 1_440) -> None:
        if interval_ms <= 0 or window < 2:
            raise ValueError("interval_ms must be > 0 and window ≥ 2")
        self.interval_ms = interval_ms
        self.window = window
        self._slots: dict[str, list[int]] = {}  # boundary index (boundary_ms // interval_ms)
        self._prices: dict[str, list[float]] = {}
        self._aligned: dict[tuple[str, ...], Aligned] = {}
        self._versions: dict[str, int] = {}
        self._growth: dict[str, tuple[int, dict[int, float]]] = {}
        self.version = 0
        self.scenario_cache: dict[str, ScenarioCache] = {}
        """account id → its last scenario P&Ls (:data:`ScenarioCache`), kept by
        :func:`~risk_worker.domain.var.scenario_quantiles`; emptied at every :meth:`refresh`."""
        self.kept: dict[str, tuple[int, object]] = {}
        """account id → (:attr:`version`, its VaR result then), kept by
        :func:`~risk_worker.domain.var.informational_var`."""

    def symbols(self) -> list[str]:
        """Symbols with at least one sample."""
        return list(self._slots)

    def samples(self, symbol: str) -> list[tuple[int, float]]:
        """``symbol``'s samples as (boundary ms since epoch, price), oldest first."""
        step = self.interval_ms
        slots, prices = self._slots.get(symbol, []), self._prices.get(symbol, [])
        return [(i * step, p) for i, p in zip(slots, prices, strict=True)]

    def record(self, symbol: str, boundary_ms: int, price: float) -> bool:
        """Record ``price`` as ``symbol``'s sample at ``boundary_ms`` (replacing one there).

        Returns False, changing nothing, when ``boundary_ms`` is not a multiple of the
        interval or not a valid time (:func:`~risk_worker.domain.bounds.is_millis`), ``price``
        is not a valid price (:func:`~risk_worker.domain.bounds.is_price`), ``symbol`` not an
        identifier, or the sample would be older than the ``window`` kept.
        """
        if boundary_ms % self.interval_ms or not (is_millis(boundary_ms) and is_price(price)):
            return False
        if symbol not in self._slots and not is_identifier(symbol):
            return False
        index = boundary_ms // self.interval_ms
        slots = self._slots.get(symbol)
        if slots is None:
            slots = self._slots[symbol] = []
            self._prices[symbol] = []
        prices = self._prices[symbol]
        if not slots or index > slots[-1]:
            slots.append(index)
            prices.append(price)
        else:
            at = bisect_left(slots, index)
            if at < len(slots) and slots[at] == index:
                prices[at] = price
            elif at == 0 and len(slots) >= self.window:
                return False
            else:
                slots.insert(at, index)
                prices.insert(at, price)
        if len(slots) > self.window:
            del slots[: len(slots) - self.window]
            del prices[: len(prices) - self.window]
        self.version += 1
        self._versions[symbol] = self.version
        return True

    def carry(self, symbol: str, price: float, received: int, until_ms: int) -> int:
        """Record a mark's ``price`` at every boundary from its receive time ``received``
        (ms, included) to ``until_ms`` (excluded) after the symbol's last sample: the mark was
        the last at or before each of them. At most ``window`` boundaries; returns how many."""
        step = self.interval_ms
        first = -(-received // step)  # the first boundary at or after the receive time
        last = (until_ms - 1) // step
        if last < first:
            return 0
        slots = self._slots.get(symbol)
        if slots and slots[-1] >= first:
            first = slots[-1] + 1 if received < slots[-1] * step else slots[-1]
        first = max(first, last - self.window + 1)
        return sum(self.record(symbol, b * step, price) for b in range(first, last + 1))

    def sample_marks(self, marks: Mapping[str, Mark], now_ms: int) -> int:
        """Record every symbol's mark (price, received ms, source timestamp: a
        :class:`~risk_worker.domain.book.Mark`) in force at each boundary up to ``now_ms``
        (included) not yet sampled; returns how many were recorded. The caller then rebuilds
        the :meth:`stale_sets` (or :meth:`refresh`)."""
        return sum(
            self.carry(symbol, mark.price, mark.received_ms, now_ms + 1)
            for symbol, mark in marks.items()
        )

    def replace(self, samples: dict[str, Iterable[tuple[int, float]]]) -> None:
        """Replace the whole history by ``samples`` (symbol → (boundary ms, price)); invalid
        samples are skipped as by :meth:`record`."""
        self._slots.clear()
        self._prices.clear()
        self._aligned.clear()
        self._growth.clear()
        self.scenario_cache.clear()
        for symbol, rows in samples.items():
            for boundary_ms, price in sorted(rows):
                self.record(symbol, boundary_ms, price)
        self.version += 1

    def refresh(self) -> None:
        """Rebuild the cached aligned vectors of every set one of whose symbols changed."""
        self.scenario_cache.clear()
        for symbols in self.stale_sets():
            self.aligned(symbols)

    def stale_sets(self) -> list[tuple[str, ...]]:
        """The cached symbol sets one of whose symbols has a sample the set's vectors lack
        (rebuild each with :meth:`aligned`; the sampling task does, one at a time)."""
        versions = self._versions
        return [
            symbols
            for symbols, found in self._aligned.items()
            if any(versions.get(s, 0) != v for s, v in zip(symbols, found[3], strict=True))
        ]

    def growth(self, symbol: str) -> dict[int, float]:
        """``symbol``'s returns as boundary index → e^r − 1, r = ln(sample / previous sample),
        where the previous boundary has a sample too. Cached until the symbol changes: do not
        modify the dict returned."""
        version = self._versions.get(symbol, 0)
        cached = self._growth.get(symbol)
        if cached is not None and cached[0] == version:
            return cached[1]
        slots = self._slots.get(symbol, [])
        prices = self._prices.get(symbol, [])
        growth = {
            slots[k]: math.exp(math.log(prices[k] / prices[k - 1])) - 1.0
            for k in range(1, len(slots))
            if slots[k] - slots[k - 1] == 1
        }
        self._growth[symbol] = (version, growth)
        return growth

    def return_count(self, symbol: str) -> int:
        """How many returns ``symbol`` has (consecutive pairs of samples)."""
        slots = self._slots.get(symbol, [])
        return sum(1 for k in range(1, len(slots)) if slots[k] - slots[k - 1] == 1)

    def aligned(self, symbols: tuple[str, ...]) -> Aligned:
        """The aligned e^r − 1 vectors of ``symbols`` (sorted, distinct), cached until one of
        them changes: O(len(symbols)) when cached and current."""
        versions = self._versions
        found = self._aligned.get(symbols)
        if found is not None:
            built = found[3]
            if all(versions.get(s, 0) == v for s, v in zip(symbols, built, strict=True)):
                return found
        growths = [self.growth(s) for s in symbols]
        common = set(growths[0]) if growths else set()
        for g in growths[1:]:
            common &= g.keys()
        boundaries = sorted(common)[-self.window :]
        vectors = tuple([g[b] for b in boundaries] for g in growths)
        ascending = sorted(vectors[0]) if len(vectors) == 1 else []
        if len(self._aligned) >= MAX_CACHED_SETS:
            self._aligned.clear()
        found = Aligned(
            symbols,
            vectors,
            len(boundaries),
            tuple(versions.get(s, 0) for s in symbols),
            ascending,
            tuple(max(map(abs, v), default=0.0) for v in vectors),
        )
        self._aligned[symbols] = found
        return found
