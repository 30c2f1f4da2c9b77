"""Per-check counters in plain ints, turned into Prometheus metrics only when scraped.

An order check used to touch a prometheus-client ``Counter`` child (``inc``) and a
``Histogram`` (``observe``): each takes a lock, and the histogram walks its bounds in Python,
a few µs per check. :class:`CheckStats` keeps the same information as list slots instead (one
count per result and reason, one count per duration bucket, and the sum of durations), and
:class:`CheckCollector` builds the two families from them at scrape time with the names,
labels, buckets, help texts and types the registered metrics had, ``_created`` samples
included: ``risk_order_checks_total{result,reason}`` (counter) and
``risk_order_check_duration_seconds`` (histogram).

The scrape runs on the HTTP thread while checks run on the event loop: it copies each list in
one step (atomic under the GIL), so a bucket count never exceeds the total and every count is
monotonic; the sum may be one check ahead of or behind the buckets.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from prometheus_client import metrics as prometheus_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from risk_worker.domain.types import DenyReason

CHECKS_NAME = "risk_order_checks_total"
CHECKS_HELP = "Order checks answered, by result (approved|denied) and deny reason (or none)."
DURATION_NAME = "risk_order_check_duration_seconds"
DURATION_HELP = "Time from receiving an order check to encoding its reply, in seconds."
OTHER = "other"
"""Reason label of a denial whose reason is not a :class:`DenyReason`."""


class CheckStats:
    """Counts of answered checks by result and reason, and their durations in fixed buckets.

    Args:
        bounds: upper bounds of the duration buckets in seconds, ascending (+Inf is added).

    Attributes:
        counts: checks per label pair, in the order of :attr:`labels` (ints).
        buckets: checks per bucket (not cumulative): ``buckets[i]`` holds durations in
            (``bounds[i-1]``, ``bounds[i]``]; the last one those above every bound.
        total_seconds: the sum of every duration (seconds).
    """

    __slots__ = ("_index", "_other", "bounds", "buckets", "counts", "labels", "total_seconds")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        if list(self.bounds) != sorted(self.bounds):
            raise ValueError("bucket bounds must be ascending")
        self.labels: tuple[tuple[str, str], ...] = (
            *(("denied", reason.value) for reason in DenyReason),
            ("approved", "none"),
            ("denied", OTHER),
        )
        """(result, reason) of each count: every deny reason, approved, other denials."""
        index: dict[str | None, int] = {reason: i for i, reason in enumerate(DenyReason)}
        index[None] = len(DenyReason)
        self._index = index
        self._other = len(DenyReason) + 1
        self.counts = [0] * len(self.labels)
        self.buckets = [0] * (len(self.bounds) + 1)
        self.total_seconds = 0.0

    def add(self, reason: str | None, seconds: float) -> None:
        """Count one answered check.

        Args:
            reason: the :class:`DenyReason` (or its value) of a denial; None when approved;
                anything else counts as ``other``.
            seconds: time spent on the check (seconds), counted in the first bucket whose
                bound is ≥ it.
        """
        self.counts[self._index.get(reason, self._other)] += 1
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.total_seconds += seconds


class CheckCollector(Collector):
    """Exposes a :class:`CheckStats` as ``risk_order_checks_total`` and
    ``risk_order_check_duration_seconds``, exactly as a labelled ``Counter`` and a ``Histogram``
    registered with the same names would (samples in the same order, ``_created`` of the time
    the collector was made unless prometheus-client's created series are disabled).

    Args:
        stats: the counts to expose.
    """

    def __init__(self, stats: CheckStats) -> None:
        self._stats = stats
        self._created = time.time()
        bounds = (*stats.bounds, float("inf"))
        self._le = [floatToGoString(b) for b in bounds]  # type: ignore[no-untyped-call]

    def describe(self) -> Iterable[Metric]:
        """The two families without samples (the registry checks their names at register)."""
        return [
            CounterMetricFamily(CHECKS_NAME, CHECKS_HELP, labels=("result", "reason")),
            HistogramMetricFamily(DURATION_NAME, DURATION_HELP, labels=()),
        ]

    def collect(self) -> Iterable[Metric]:
        """Both families with the counts now (called by the registry at each scrape)."""
        stats = self._stats
        counts = stats.counts.copy()
        buckets = stats.buckets.copy()
        total = stats.total_seconds
        created = self._created if getattr(prometheus_metrics, "_use_created", True) else None
        checks = CounterMetricFamily(CHECKS_NAME, CHECKS_HELP, labels=("result", "reason"))
        for (result, reason), n in zip(stats.labels, counts, strict=True):
            checks.add_metric((result, reason), float(n), created=created)
        duration = HistogramMetricFamily(DURATION_NAME, DURATION_HELP, labels=())
        cumulative = []
        acc = 0.0
        for le, n in zip(self._le, buckets, strict=True):
            acc += n
            cumulative.append((le, acc))
        duration.add_metric((), cumulative, total)
        if created is not None:
            duration.samples.append(Sample(DURATION_NAME + "_created", {}, created))
        return [checks, duration]
