"""The monitor loop: every interval, each account's metrics, alerts, audit records and trips.

It calls the decision core's monitor, publishes what it reports, queues audit records and
writes automatic trips to the account's automatic key of the KV bucket (retried in the
background; the trip is in force on this instance from the moment it is decided). Every
account is evaluated every interval; its ``risk.metrics`` is published only when its figures
moved, an alert or trip came with it, or its turn came (:mod:`risk_worker.wire.metrics_gate`).

With a lease, the first pass after this instance becomes the holder (a standby taking over, or a
holder that lost and regained the lease) is a catch-up pass: the accounts whose trip the previous
holder may have died before writing are tripped (see :mod:`risk_worker.domain.monitor`). It
waits for a confirmed trading-state copy, so that what is already tripped or cleared is known.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import tenacity
from nats.js.kv import KeyValue

from risk_worker.adapters.kv_bucket import write_state
from risk_worker.adapters.lease import Lease
from risk_worker.adapters.nats_service import WorkerService, now_ms
from risk_worker.domain.engine import RiskEngine, trip_value
from risk_worker.domain.reports import AccountReport, Trip
from risk_worker.domain.trading_state import auto_key, auto_strategy_key
from risk_worker.domain.types import PolicyType, StateSource, TradingState
from risk_worker.errors import TradingStateError
from risk_worker.service.observability import Metrics
from risk_worker.wire.audit import RiskEventSink, violation_record
from risk_worker.wire.metrics_gate import MetricsGate
from risk_worker.wire.outbound import RiskMetricsMsg, StateChangeMsg, alert_msg, metrics_msg
from risk_worker.wire.strategies import strategies_msg

log = logging.getLogger("risk_worker.monitor")

METRICS_SUBJECT = "risk.metrics"
ALERTS_PREFIX = "risk.alerts."


class MonitorTask:
    """Runs the monitor every ``interval`` seconds until cancelled.

    Args:
        engine: the decision core.
        service: publishes on NATS.
        sink: receives audit records.
        kv: the trading-state bucket (automatic trips are written there).
        worker_id: recorded as the author of automatic trips.
        interval: seconds between passes.
        spawn: starts a background coroutine owned by the worker.
        metrics: counts alerts, violations and trips; gauges set each pass.
        queue_depth: the audit queue's depth now (for its gauge).
        on_pass: called after each pass with every evaluated account's last published metrics
            (this pass's when published; the Redis snapshots).
        lease: when given, only the lease holder publishes, trips and snapshots.
        state_confirmed: whether the trading-state copy is confirmed now (a catch-up pass waits
            for it); None counts as always confirmed.
        on_takeover: called with the time (ms) of the catch-up pass of each new term as holder
            (the kill switch announces the HALTs the previous holder did not).
        gate: decides which accounts' ``risk.metrics`` a pass publishes; None publishes every
            account every pass.
    """

    def __init__(
        self,
        engine: RiskEngine,
        service: WorkerService,
        sink: RiskEventSink,
        kv: KeyValue,
        worker_id: str,
        interval: float,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        metrics: Metrics,
        queue_depth: Callable[[], int],
        on_pass: Callable[[dict[str, RiskMetricsMsg], int], None] | None = None,
        lease: Lease | None = None,
        state_confirmed: Callable[[], bool] | None = None,
        on_takeover: Callable[[int], None] | None = None,
        gate: MetricsGate | None = None,
    ) -> None:
        self._gate = MetricsGate(0.0, 1) if gate is None else gate
        self._on_takeover = on_takeover
        self._lease = lease
        self._state_confirmed = state_confirmed
        self._was_held = False
        self._catch_up_due = False
        self._on_pass = on_pass
        self._metrics = metrics
        self._queue_depth = queue_depth
        self._engine = engine
        self._service = service
        self._sink = sink
        self._kv = kv
        self._worker_id = worker_id
        self._interval = interval
        self._spawn = spawn
        self._published = 0  # risk.metrics sent in the current pass

    async def run(self) -> None:
        """A fixed schedule; a pass that overran skips the ticks it missed (no burst)."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at = max(next_at + self._interval, loop.time())
            await asyncio.sleep(next_at - loop.time())
            try:
                await self._pass()
            except Exception:
                log.exception("monitor pass failed")

    async def _pass(self) -> None:
        """Evaluate every account, one at a time, yielding to the event loop after each so a
        check never waits behind more than one account's evaluation (p99 at 1,000 accounts).
        Nothing while the book is being replayed at start (a partial book alerts falsely)."""
        if self._engine.book_replaying:
            return
        held = True if self._lease is None else await self._lease.renew()
        catch_up = self._catch_up(held)
        now = now_ms()
        if catch_up and self._on_takeover is not None:
            self._on_takeover(now)
        engine = self._engine
        engine.begin_monitor_pass(now)
        reports: list[AccountReport] = []
        latest: dict[str, RiskMetricsMsg] = {}
        if not held:  # another instance publishes; a new term starts by publishing every account
            self._gate.reset()
        self._published = 0
        for account_id in engine.known_accounts():
            report = engine.monitor_account(account_id, now, held, catch_up)
            if report is not None:
                reports.append(report)
                if held:
                    latest[account_id] = await self._publish_report(report, now)
            await asyncio.sleep(0)
        if held:
            self._metrics.metrics_messages(self._published, len(latest) - self._published)
        if len(self._gate) > len(latest):
            self._gate.retain(latest)
        self._set_gauges(reports)
        if held and self._on_pass is not None:
            self._on_pass(latest, now)

    def _catch_up(self, held: bool) -> bool:
        """Whether this pass is the catch-up pass of a new term as holder."""
        if held and not self._was_held:
            self._catch_up_due = True
        self._was_held = held
        if not held:
            self._catch_up_due = False
        if self._catch_up_due and (self._state_confirmed is None or self._state_confirmed()):
            self._catch_up_due = False
            return True
        return False

    async def _publish_report(self, r: AccountReport, now: int) -> RiskMetricsMsg:
        """Publish metrics (when the gate says so: always with an alert or a trip) and alerts,
        record what was alerted or halted, start a trip; the account's last published metrics
        (this pass's when published; the same object as before when not)."""
        metrics = metrics_msg(
            r.account_id,
            now,
            r.metrics,
            r.utilization,
            r.risk_level,
            r.trading_state,
            self._worker_id,
            strategies_msg(r.strategies),
        )
        gate = self._gate
        if gate.due(metrics, now, force=bool(r.alerts or r.trip or r.strategy_trips)):
            await self._service.publish(METRICS_SUBJECT, metrics)
            gate.published(metrics, now)
            self._published += 1
        else:  # the snapshots keep what was published (the same object: nothing to rewrite)
            last = gate.last(r.account_id)
            if last is not None:
                metrics = last
        if r.deduplicated:
            self._metrics.alert_deduplicated(r.deduplicated)
        for draft in r.alerts:
            await self._service.publish(
                ALERTS_PREFIX + draft.level.value, alert_msg(draft, uuid.uuid4().hex, now)
            )
            self._metrics.alert(draft.level.value)
            self._metrics.violation(draft.evaluation.policy.type.value, "monitor")
            policy_type = draft.evaluation.policy.type
            if draft.strategy_id is None:
                caused = _caused(r.trip, policy_type)
            else:
                caused = policy_type is PolicyType.EMERGENCY and any(
                    t.strategy_id == draft.strategy_id for t in r.strategy_trips
                )
            self._sink.record(
                violation_record(
                    draft.evaluation,
                    r.account_id,
                    now,
                    "monitor",
                    "halted" if caused else "alerted",
                    strategy_id=draft.strategy_id,
                )
            )
        for trip in (r.trip, *r.strategy_trips):
            if trip is None:
                continue
            if trip.source is StateSource.CIRCUIT_BREAKER:
                self._metrics.breaker_trip()
            self._metrics.trip(
                trip.source.value, "account" if trip.strategy_id is None else "strategy"
            )
            await self._announce_trip(trip, now)
            self._spawn(self._write_trip(trip, now))
        return metrics

    def _set_gauges(self, reports: list[AccountReport]) -> None:
        states = self._engine.states
        global_value = states.global_value
        self._metrics.set_gauges(
            accounts=len(reports),
            halted=len(states.halted_accounts()),
            stale_marks=sum(1 for r in reports if r.metrics.stale_marks),
            global_state=TradingState.ACTIVE if global_value is None else global_value.state,
            persist_queue_depth=self._queue_depth(),
            state_confirmed=self._state_confirmed is None or self._state_confirmed(),
            risk_levels=collections.Counter(r.risk_level.value for r in reports),
        )

    async def _announce_trip(self, trip: Trip, now: int) -> None:
        """Publish the trip at once: it is in force on this instance from this moment."""
        log.error(
            "tripping account %s%s to %s (%s): %s",
            trip.account_id,
            "" if trip.strategy_id is None else f" strategy {trip.strategy_id}",
            trip.state,
            trip.source,
            trip.reason,
        )
        await self._service.publish(
            ALERTS_PREFIX + "emergency",
            StateChangeMsg(
                level="emergency",
                type="emergency_stop" if trip.state is TradingState.HALTED else "state_change",
                scope="account" if trip.strategy_id is None else "strategy",
                account_id=trip.account_id,
                strategy_id=trip.strategy_id,
                state=trip.state,
                reason=trip.reason,
                triggered_by=self._worker_id,
                timestamp=now,
                source=trip.source.value,
            ),
        )

    async def _write_trip(self, trip: Trip, now: int) -> None:
        """Write an automatic trip to the bucket (retried) so every instance sees it; the audit
        record is written when the bucket's entry comes back through the watcher."""
        value = trip_value(trip, self._worker_id, now)
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(TradingStateError),
            wait=tenacity.wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.2),
            stop=tenacity.stop_after_delay(300),
            reraise=True,
        )
        key = (
            auto_key(trip.account_id)
            if trip.strategy_id is None
            else auto_strategy_key(trip.account_id, trip.strategy_id)
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await write_state(self._kv, key, value)
        except TradingStateError as exc:
            log.error(
                "could not record the trip %s in the bucket for 300 s; it is in force "
                "on this instance only: %s",
                key,
                exc,
            )


def _caused(trip: Trip | None, policy_type: PolicyType) -> bool:
    """Whether a violation of this type caused the trip (emergency policy, or the breaker)."""
    if trip is None:
        return False
    if trip.source is StateSource.CIRCUIT_BREAKER:
        return policy_type is PolicyType.HARD
    return policy_type is PolicyType.EMERGENCY
