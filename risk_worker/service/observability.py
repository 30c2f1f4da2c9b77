"""Prometheus metrics of one worker, on an injected registry (never the global one).

Every label comes from a closed set (check result and deny reason, event kind, invalid-message
reason, policy type, violation source, alert level); an account or order id is never a label.
Known label combinations are created at zero so dashboards see a flat line, not a gap. A value
outside its set is counted under ``"other"`` rather than growing the series.

The hot path (one order check) is plain-int arithmetic in :class:`~.check_stats.CheckStats`
(a dict lookup, two list increments and a float add), exposed through a collector at scrape
time with the same names, labels and buckets as a ``Counter`` and a ``Histogram``. Other
counters bind their labelled children once here, in dicts.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge

from risk_worker import _core
from risk_worker.domain.reports import AlertLevel
from risk_worker.domain.types import (
    STATE_SEVERITY,
    PolicyType,
    RiskLevel,
    StateSource,
    TradingState,
)
from risk_worker.service.check_stats import CheckCollector, CheckStats

OTHER = "other"
"""Label value of anything outside a closed set."""

CHECK_BUCKETS_SECONDS = (
    0.00001, 0.000025, 0.00005,
    0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05,
    0.1,
)  # fmt: skip
"""Order-check duration buckets: 10 µs to 100 ms in 1-2.5-5 steps (then +Inf)."""

EVENT_KINDS = ("positions.update", "fills.confirmed", "pnl.update", "market.tick")
"""``kind`` of ``risk_events_total``: the input subjects (ticks without their symbol token)."""

INVALID_REASONS = (
    "malformed_json",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "non_finite",
    "bad_identifier",
    "too_large",
)
"""``reason`` of ``risk_events_invalid_total``: :class:`InvalidMessageError` reason codes."""

DROP_REASONS = ("no_reply", "system_subject", "not_an_inbox")
"""``reason`` of ``risk_requests_dropped_total``: why a request was not answered (its reply
subject is missing, a ``$`` subject such as a ``$KV`` key, or outside the accepted inboxes)."""

IGNORED_RESULTS = ("stale", "duplicate", "suspect", "symbol_limit")
"""``result`` of ``risk_events_ignored_total``: events the book received but did not apply
(``suspect``: a tick held until confirmed; ``symbol_limit``: a new symbol beyond
``RISK_MAX_SYMBOLS``)."""

SNAPSHOT_KINDS = ("account", "mark", "inputs_seq")
"""``kind`` of ``risk_snapshot_refused_total``: what a refused stored entry was."""

VIOLATION_SOURCES = ("pre_trade", "monitor")
"""``source`` of ``risk_violations_total``: found by an order check or by the monitor."""

TRIP_SCOPES = ("account", "strategy")
"""``scope`` of ``risk_trips_total``: an account's trip or one strategy's of an account."""


class Metrics:
    """Every metric of the worker, with cheap typed methods to update them.

    Args:
        registry: where the metrics are registered (default: a new, private registry).

    Attributes:
        registry: the registry to expose (``/metrics``).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = CollectorRegistry() if registry is None else registry
        self.checks = CheckStats(CHECK_BUCKETS_SECONDS)
        """Answered checks and their durations (plain ints; ``risk_order_checks_total`` and
        ``risk_order_check_duration_seconds`` at scrape time)."""
        r.register(CheckCollector(self.checks))
        events = Counter(
            "risk_events_total", "Valid input events received, by kind.", ("kind",), registry=r
        )
        ignored = Counter(
            "risk_events_ignored_total",
            "Valid events the book did not apply, by kind and result "
            "(stale|duplicate|suspect|symbol_limit).",
            ("kind", "result"),
            registry=r,
        )
        invalid = Counter(
            "risk_events_invalid_total",
            "Input events dropped as invalid, by kind and reason code.",
            ("kind", "reason"),
            registry=r,
        )
        dropped = Counter(
            "risk_requests_dropped_total",
            "Requests (checks, $SRV) dropped unanswered because of their reply subject, by reason.",
            ("reason",),
            registry=r,
        )
        violations = Counter(
            "risk_violations_total",
            "Policy violations, by policy type and source (pre_trade|monitor).",
            ("policy_type", "source"),
            registry=r,
        )
        alerts = Counter(
            "risk_alerts_published_total", "Alerts published, by level.", ("level",), registry=r
        )
        self._alerts_dedup = Counter(
            "risk_alerts_deduplicated_total",
            "Alerts suppressed as repeats within the deduplication window.",
            registry=r,
        )
        self._breaker_trips = Counter(
            "risk_circuit_breaker_trips_total",
            "Accounts halted by the circuit breaker.",
            registry=r,
        )
        self._persist_failures = Counter(
            "risk_persist_failures_total",
            "Audit records that could not be persisted (dropped or failed writes).",
            registry=r,
        )
        refused = Counter(
            "risk_snapshot_refused_total",
            "Stored snapshot entries refused at a restore as invalid, by kind "
            "(account|mark|inputs_seq).",
            ("kind",),
            registry=r,
        )
        self._refused = {kind: refused.labels(kind) for kind in SNAPSHOT_KINDS}
        self._refused_other = refused.labels(OTHER)
        self._reconnects = Counter(
            "risk_nats_reconnects_total", "Reconnections to NATS.", registry=r
        )
        self._forwarded = Counter(
            "risk_checks_forwarded_total",
            "Checks and batches received for an account another instance owns, forwarded to it.",
            registry=r,
        )
        metrics_msgs = Counter(
            "risk_metrics_messages_total",
            "Accounts' risk.metrics by the monitor's passes: published (moved, alert, trip or "
            "its turn) or skipped (unchanged within RISK_METRICS_CHANGE_THRESHOLD).",
            ("result",),
            registry=r,
        )
        self._metrics_published = metrics_msgs.labels("published")
        self._metrics_skipped = metrics_msgs.labels("skipped")
        self._global_state = Gauge(
            "risk_trading_state_global",
            "Global trading state: 0 active, 1 reducing, 2 halted.",
            registry=r,
        )
        self._halted = Gauge(
            "risk_accounts_halted", "Accounts whose trading state is HALTED.", registry=r
        )
        self._queue_depth = Gauge(
            "risk_persist_queue_depth", "Audit records waiting to be persisted.", registry=r
        )
        self._accounts = Gauge("risk_accounts", "Accounts in the book.", registry=r)
        self._stale_marks = Gauge(
            "risk_stale_marks", "Symbols held whose mark price is stale.", registry=r
        )
        Gauge(
            "risk_decision_core",
            "1 for the decision core this process runs: compiled (mypyc) or pure (Python).",
            ("core",),
            registry=r,
        ).labels(_core.STATUS.active).set(1)
        self._confirmed = Gauge(
            "risk_trading_state_confirmed",
            "1 while this instance's copy of the trading state is confirmed, else 0 (it denies).",
            registry=r,
        )
        by_level = Gauge(
            "risk_accounts_by_risk_level",
            "Accounts in the book by risk level (LOW|MEDIUM|HIGH|BREACHED).",
            ("level",),
            registry=r,
        )
        self._by_level = {level.value: by_level.labels(level.value) for level in RiskLevel}
        trips = Counter(
            "risk_trips_total",
            "Automatic trips written by the lease holder, by source and scope (account|strategy).",
            ("source", "scope"),
            registry=r,
        )
        self._trips = {
            (src.value, scope): trips.labels(src.value, scope)
            for src in StateSource
            for scope in TRIP_SCOPES
        }
        self._trips_family = trips

        self._events = {kind: events.labels(kind) for kind in EVENT_KINDS}
        self._event_other = events.labels(OTHER)
        self._ignored = {
            (k, res): ignored.labels(k, res) for k in EVENT_KINDS for res in IGNORED_RESULTS
        }
        self._invalid = {
            (k, why): invalid.labels(k, why) for k in EVENT_KINDS for why in INVALID_REASONS
        }
        self._dropped = {why: dropped.labels(why) for why in DROP_REASONS}
        self._dropped_family = dropped
        self._violations = {
            (t.value, s): violations.labels(t.value, s)
            for t in PolicyType
            for s in VIOLATION_SOURCES
        }
        self._alerts = {level.value: alerts.labels(level.value) for level in AlertLevel}
        self._ignored_family, self._invalid_family = ignored, invalid
        self._violations_family, self._alerts_family = violations, alerts

    # -- hot path -----------------------------------------------------------------------------

    def check(self, reason: str | None, seconds: float) -> None:
        """Count one answered order check and its duration (:meth:`CheckStats.add`).

        Args:
            reason: the :class:`DenyReason` (or its value) of a denial; None when approved.
            seconds: time spent on the check, in seconds.
        """
        self.checks.add(reason, seconds)

    def event(self, kind: str, result: str = "applied") -> None:
        """Count one valid input event of ``kind`` (one of :data:`EVENT_KINDS`).

        Args:
            kind: the event kind.
            result: what the book did (an ``ApplyResult`` value); stale and duplicate events
                are also counted in ``risk_events_ignored_total``.
        """
        self._events.get(kind, self._event_other).inc()
        if result != "applied":
            self._child(self._ignored, self._ignored_family, kind, result).inc()

    def events(self, kind: str, n: int) -> None:
        """Count ``n`` valid input events of ``kind`` at once, all applied (the tick feed
        counts a batch in a plain int and adds it here, one ``inc`` per batch)."""
        self._events.get(kind, self._event_other).inc(n)

    def invalid_event(self, kind: str, reason: str) -> None:
        """Count one dropped invalid event (``reason``: an ``InvalidMessageError`` code)."""
        self._child(self._invalid, self._invalid_family, kind, reason).inc()

    def request_dropped(self, reason: str) -> None:
        """Count one request dropped unanswered (``reason``: one of :data:`DROP_REASONS`)."""
        child = self._dropped.get(reason)
        (child if child is not None else self._dropped_family.labels(OTHER)).inc()

    def check_forwarded(self) -> None:
        """Count one check (or batch) forwarded to the account's owner (no decision here)."""
        self._forwarded.inc()

    # -- monitor and edges --------------------------------------------------------------------

    def violation(self, policy_type: str, source: str) -> None:
        """Count one policy violation (``policy_type``: a PolicyType; ``source``: see above)."""
        self._child(self._violations, self._violations_family, policy_type, source).inc()

    def alert(self, level: str) -> None:
        """Count one published alert of ``level`` (an :class:`AlertLevel`)."""
        child = self._alerts.get(level)
        (child if child is not None else self._alerts_family.labels(OTHER)).inc()

    def metrics_messages(self, published: int, skipped: int) -> None:
        """Count one pass's ``risk.metrics``: ``published`` sent, ``skipped`` held back."""
        self._metrics_published.inc(published)
        self._metrics_skipped.inc(skipped)

    def alert_deduplicated(self, n: int = 1) -> None:
        """Count ``n`` alerts suppressed by deduplication."""
        self._alerts_dedup.inc(n)

    def snapshot_refused(self, kind: str, n: int = 1) -> None:
        """Count ``n`` stored entries of ``kind`` (account|mark) refused at a restore."""
        self._refused.get(kind, self._refused_other).inc(n)

    def breaker_trip(self) -> None:
        """Count one account halted by the circuit breaker."""
        self._breaker_trips.inc()

    def trip(self, source: str, scope: str) -> None:
        """Count one automatic trip (``source``: a StateSource; ``scope``: account|strategy)."""
        self._child(self._trips, self._trips_family, source, scope).inc()

    def reconnect(self) -> None:
        """Count one reconnection to NATS."""
        self._reconnects.inc()

    def persist_failure(self, n: int = 1) -> None:
        """Count ``n`` audit records that could not be persisted."""
        self._persist_failures.inc(n)

    def set_gauges(
        self,
        *,
        accounts: int,
        halted: int,
        stale_marks: int,
        global_state: TradingState,
        persist_queue_depth: int,
        state_confirmed: bool,
        risk_levels: Mapping[str, int],
    ) -> None:
        """Set the gauges the monitor reads once per interval.

        Args:
            accounts: accounts in the book.
            halted: accounts whose own trading state is HALTED.
            stale_marks: symbols held whose mark is older than the maximum age.
            global_state: the global trading state (exported as 0, 1, 2 by severity).
            persist_queue_depth: audit records queued, not yet persisted.
            state_confirmed: whether the trading-state copy is confirmed now.
            risk_levels: accounts per :class:`RiskLevel` value; a level absent counts 0.
        """
        self._accounts.set(accounts)
        self._halted.set(halted)
        self._stale_marks.set(stale_marks)
        self._global_state.set(STATE_SEVERITY[global_state])
        self._queue_depth.set(persist_queue_depth)
        self._confirmed.set(1 if state_confirmed else 0)
        for level, gauge in self._by_level.items():
            gauge.set(risk_levels.get(level, 0))

    @staticmethod
    def _child(
        children: dict[tuple[str, str], Counter], family: Counter, first: str, second: str
    ) -> Counter:
        """The pre-bound child of a two-label counter, or its ``other`` fallback."""
        child = children.get((first, second))
        if child is not None:
            return child
        firsts, seconds = {key[0] for key in children}, {key[1] for key in children}
        return family.labels(
            first if first in firsts else OTHER, second if second in seconds else OTHER
        )
