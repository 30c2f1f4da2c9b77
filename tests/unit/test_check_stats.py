"""Per-check counts in plain ints: /metrics shows exactly what a Counter and a Histogram did.

The reference is the registration the worker had before (a labelled ``Counter`` with every
label pair created at zero, a ``Histogram`` on the same buckets), fed the same checks: the
exposition text must be the same line for line (names, HELP, TYPE, labels, buckets, values),
only the ``_created`` timestamps differ.
"""

from __future__ import annotations

import random
import re
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import metrics as prometheus_metrics

from risk_worker.domain.types import DenyReason
from risk_worker.service.check_stats import OTHER, CheckCollector, CheckStats
from risk_worker.service.observability import CHECK_BUCKETS_SECONDS, Metrics

_CREATED = re.compile(r"^(\S+_created(?:\{[^}]*\})?) \S+$", re.MULTILINE)


def reference() -> tuple[CollectorRegistry, Counter, Histogram]:
    """The registration ``Metrics`` had before the plain-int counts."""
    r = CollectorRegistry()
    checks = Counter(
        "risk_order_checks_total",
        "Order checks answered, by result (approved|denied) and deny reason (or none).",
        ("result", "reason"),
        registry=r,
    )
    seconds = Histogram(
        "risk_order_check_duration_seconds",
        "Time from receiving an order check to encoding its reply, in seconds.",
        buckets=CHECK_BUCKETS_SECONDS,
        registry=r,
    )
    for reason in DenyReason:
        checks.labels("denied", reason.value)
    checks.labels("approved", "none")
    checks.labels("denied", OTHER)
    return r, checks, seconds


def observe_reference(checks: Counter, seconds: Histogram, reason: str | None, s: float) -> None:
    if reason is None:
        checks.labels("approved", "none").inc()
    elif reason in set(DenyReason):
        checks.labels("denied", str(reason)).inc()
    else:
        checks.labels("denied", OTHER).inc()
    seconds.observe(s)


def exposition(registry: CollectorRegistry) -> str:
    """The text format with every ``_created`` value masked."""
    return _CREATED.sub(r"\1 <created>", generate_latest(registry).decode())


def checks_of(n: int, seed: int = 7) -> list[tuple[str | None, float]]:
    """``n`` checks: mostly approvals, every reason, strings, unknown reasons; durations on,
    between and beyond the bucket bounds."""
    rng = random.Random(seed)
    reasons: list[str | None] = [None] * 6 + list(DenyReason) + ["insufficient_margin", "new"]
    durations = [*CHECK_BUCKETS_SECONDS, 0.0, 0.5, 3.0]
    out = []
    for _ in range(n):
        s = rng.choice(durations) if rng.random() < 0.3 else rng.uniform(0, 0.12)
        out.append((rng.choice(reasons), s))
    return out


def test_exposition_when_fresh_then_same_as_counter_and_histogram() -> None:
    ref, _c, _h = reference()
    assert exposition(Metrics().registry).startswith(exposition(ref))


@pytest.mark.parametrize("n", [1, 1000])
def test_exposition_when_n_checks_then_same_as_counter_and_histogram(n: int) -> None:
    ref, checks, seconds = reference()
    m = Metrics()
    for reason, s in checks_of(n):
        m.check(reason, s)
        observe_reference(checks, seconds, reason, s)
    ours = exposition(m.registry)
    theirs = exposition(ref)
    assert ours.startswith(theirs)
    assert f"risk_order_check_duration_seconds_count {float(n)}" in ours


def test_stats_when_n_checks_then_counts_sum_and_buckets_are_exact() -> None:
    stats = CheckStats(CHECK_BUCKETS_SECONDS)
    stats.add(None, 0.00001)  # on the first bound: first bucket
    stats.add(DenyReason.POLICY_VIOLATION, 0.0000100001)
    stats.add("policy_violation", 1.0)  # above every bound: +Inf only
    stats.add("not_a_reason", 0.0)
    index = dict(zip(stats.labels, range(len(stats.labels)), strict=True))
    assert stats.counts[index["approved", "none"]] == 1
    assert stats.counts[index["denied", "policy_violation"]] == 2
    assert stats.counts[index["denied", OTHER]] == 1
    assert sum(stats.counts) == 4
    assert stats.buckets[0] == 2 and stats.buckets[1] == 1 and stats.buckets[-1] == 1
    assert stats.total_seconds == pytest.approx(1.0000200001)


def test_stats_when_bounds_not_ascending_then_refused() -> None:
    with pytest.raises(ValueError, match="ascending"):
        CheckStats((0.1, 0.01))


def test_collector_when_created_series_disabled_then_none_exposed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prometheus_metrics, "_use_created", False)
    r = CollectorRegistry()
    r.register(CheckCollector(CheckStats(CHECK_BUCKETS_SECONDS)))
    assert b"_created" not in generate_latest(r)


def test_collector_when_registered_twice_then_duplicate_names_refused() -> None:
    m = Metrics()
    with pytest.raises(ValueError, match="Duplicated"):
        m.registry.register(CheckCollector(CheckStats(CHECK_BUCKETS_SECONDS)))


def test_check_when_timed_then_cheaper_than_a_counter_and_histogram(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Printed, not asserted as a ratio on a shared machine: both costs per call (the
    reference with its labelled child bound once, as ``Metrics`` had it)."""
    _r, checks, seconds = reference()
    m = Metrics()
    n = 20_000
    started = time.perf_counter_ns()
    for _ in range(n):
        m.check(None, 0.00004)
    ours = (time.perf_counter_ns() - started) / n
    approved = checks.labels("approved", "none")  # bound once, as Metrics did
    started = time.perf_counter_ns()
    for _ in range(n):
        approved.inc()
        seconds.observe(0.00004)
    theirs = (time.perf_counter_ns() - started) / n
    with capsys.disabled():
        print(f"\nMetrics.check {ours:.0f} ns per call; Counter + Histogram {theirs:.0f} ns")
    assert m.checks.counts[m.checks.labels.index(("approved", "none"))] == n
