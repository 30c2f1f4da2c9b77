"""The soak's figures from what its clients saw: unconfirmed intervals, approvals inside them,
latency percentiles per phase, a process's resident set.

Pure bookkeeping (no I/O but ``/proc``): times are ``time.monotonic()`` seconds, latencies
milliseconds.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path


def vm_rss_mb(pid: int | None) -> float:
    """Resident set (``VmRSS``) of a live process, MiB; 0.0 when gone or unreadable."""
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


@dataclass
class UnconfirmedIntervals:
    """One worker's unconfirmed intervals, from ``/ready`` polls fed in time order.

    A run of consecutive polls answering ``trading_state: unconfirmed`` makes the interval
    ``[first poll's answer, last poll's send]``: the worker certainly reported unconfirmed at
    both ends (inner bounds, so an approval decided just before or after is not counted). A poll
    answering ``confirmed`` closes the run; a poll without an answer (the worker down or busy)
    neither opens nor closes one.
    """

    intervals: list[tuple[float, float]] = field(default_factory=list)
    _open: tuple[float, float] | None = None

    def feed(self, sent: float, answered: float, confirmed: bool | None) -> None:
        """One poll: sent and answered (monotonic s); ``confirmed`` None when no answer."""
        if confirmed is None:
            return
        if confirmed:
            self._close()
        elif self._open is None:
            self._open = (answered, sent)
        else:
            self._open = (self._open[0], sent)

    def close(self) -> list[tuple[float, float]]:
        """End the polling (an open run becomes an interval); the intervals, in time order."""
        self._close()
        return self.intervals

    def _close(self) -> None:
        if self._open is not None:
            start, end = self._open
            self.intervals.append((start, max(start, end)))
            self._open = None

    @property
    def seconds(self) -> float:
        """Total length of the closed intervals (s)."""
        return sum(end - start for start, end in self.intervals)


def approvals_inside(
    approvals: list[tuple[float, float]], intervals: list[tuple[float, float]]
) -> int:
    """How many approvals (request sent, reply received; monotonic s) lie wholly inside one of
    ``intervals`` (sorted, disjoint): the worker was unconfirmed for the whole round trip."""
    starts = [start for start, _ in intervals]
    count = 0
    for sent, received in approvals:
        i = bisect.bisect_right(starts, sent) - 1
        if i >= 0 and intervals[i][0] <= sent and received <= intervals[i][1]:
            count += 1
    return count


def percentile(sorted_ms: list[float], q: float) -> float:
    """The ``q`` quantile (0..1, nearest rank) of sorted samples; NaN when empty."""
    if not sorted_ms:
        return float("nan")
    rank = min(len(sorted_ms) - 1, max(0, int(q * len(sorted_ms) + 0.5) - 1))
    return sorted_ms[rank]


@dataclass
class Phase:
    """One stretch of the run between two faults: its name, start (monotonic s), what its
    checks got (latencies of answered ones, ms) and how many got no reply."""

    name: str
    start: float
    latencies_ms: list[float] = field(default_factory=list)
    approved: int = 0
    denied: int = 0
    unanswered: int = 0
    end: float = 0.0

    def summary(self) -> tuple[int, int, int, float, float]:
        """(answered, approved, unanswered, p50 ms, p99 ms)."""
        ordered = sorted(self.latencies_ms)
        return (
            len(ordered),
            self.approved,
            self.unanswered,
            percentile(ordered, 0.50),
            percentile(ordered, 0.99),
        )


@dataclass
class Timeline:
    """The run's phases in order; checks are counted in the phase current when they were sent."""

    phases: list[Phase] = field(default_factory=list)

    def begin(self, name: str, now: float) -> Phase:
        """Start phase ``name`` at ``now`` (monotonic s), ending the current one."""
        if self.phases:
            self.phases[-1].end = now
        phase = Phase(name, now)
        self.phases.append(phase)
        return phase

    @property
    def current(self) -> Phase:
        """The phase in progress. Raises IndexError before the first `begin`."""
        return self.phases[-1]
