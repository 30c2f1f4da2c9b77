"""The soak's bookkeeping: unconfirmed intervals from /ready polls, approvals inside them,
percentiles and phases."""

from __future__ import annotations

import math
import os

from risk_worker.bench.soak_stats import (
    Timeline,
    UnconfirmedIntervals,
    approvals_inside,
    percentile,
    vm_rss_mb,
)


def test_intervals_when_polls_flip_then_inner_bounds_and_no_answer_changes_nothing() -> None:
    tracker = UnconfirmedIntervals()
    tracker.feed(0.00, 0.01, True)
    tracker.feed(1.00, 1.01, False)  # opens at its answer: 1.01
    tracker.feed(1.02, 1.03, None)  # no answer: neither opens nor closes
    tracker.feed(1.04, 1.05, False)  # extends to its send: 1.04
    tracker.feed(1.06, 1.07, True)
    tracker.feed(2.00, 2.01, False)  # a single poll: a zero-length interval
    tracker.feed(2.02, 2.03, True)
    tracker.feed(3.00, 3.01, False)  # still open at the end

    assert tracker.close() == [(1.01, 1.04), (2.01, 2.01), (3.01, 3.01)]
    assert math.isclose(tracker.seconds, 0.03)


def test_approvals_inside_when_round_trip_wholly_inside_then_counted_straddling_not() -> None:
    intervals = [(1.0, 2.0), (5.0, 6.0)]
    approvals = [
        (1.1, 1.2),  # inside the first
        (5.5, 5.9),  # inside the second
        (0.9, 1.1),  # straddles the start: decided maybe before
        (1.9, 2.1),  # straddles the end
        (3.0, 3.1),  # between
        (7.0, 7.1),  # after
    ]
    assert approvals_inside(approvals, intervals) == 2
    assert approvals_inside(approvals, []) == 0


def test_percentile_nearest_rank_and_nan_when_empty() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 0.50) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.5))


def test_timeline_when_phases_begin_then_each_ends_where_the_next_starts() -> None:
    timeline = Timeline()
    timeline.begin("steady", 10.0)
    timeline.current.latencies_ms += [1.0, 2.0, 3.0]
    timeline.current.approved = 3
    timeline.begin("node killed", 12.5)
    timeline.current.unanswered = 4

    steady, killed = timeline.phases
    assert (steady.end, killed.start) == (12.5, 12.5)
    assert steady.summary() == (3, 3, 0, 2.0, 3.0)
    assert killed.summary()[:3] == (0, 0, 4)


def test_vm_rss_of_this_process_and_zero_when_gone() -> None:
    assert vm_rss_mb(os.getpid()) > 1.0
    assert vm_rss_mb(None) == 0.0
    assert vm_rss_mb(2**22 + 7) == 0.0
