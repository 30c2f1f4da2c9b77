"""The monitor loop: every interval, each account's metrics, alerts, audit records and trips.

It calls the decision core's monitor, publishes what it reports, queues audit records and
writes automatic trips to the account's automatic key of the KV bucket (retried in the
background; the trip is in force on this instance from the moment it is decided).

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

import msgspec
import tenacity
from nats.js.kv import KeyValue

from risk_worker.adapters.kv_bucket import write_state
from risk_worker.adapters.lease import Lease
from risk_worker.adapters.nats_service import WorkerService, now_ms
from risk_worker.domain.engine import RiskEngine, trip_value
from risk_worker.domain.reports import AccountReport, Trip
from risk_worker.domain.trading_state import (
    StateValue,
    auto_key,
    auto_strategy_key,
    parse_state_key,
)
from risk_worker.domain.types import PolicyType, StateSource, TradingState
from risk_worker.errors import TradingStateError
from risk_worker.service.observability import Metrics
from risk_worker.wire.audit import RiskEventSink, StateChangeRecord, violation_record
from risk_worker.wire.numbers import finite
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
        on_pass: called after each pass with the metrics published per account (snapshots).
        lease: when given, only the lease holder publishes, trips and snapshots.
        state_confirmed: whether the trading-state copy is confirmed now (a catch-up pass waits
            for it); None counts as always confirmed.
        on_takeover: called with the time (ms) of the catch-up pass of each new term as holder
            (the kill switch announces the HALTs the previous holder did not).
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
    ) -> None:
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
        published: dict[str, RiskMetricsMsg] = {}
        for account_id in engine.known_accounts():
            report = engine.monitor_account(account_id, now, held, catch_up)
            if report is not None:
                reports.append(report)
                if held:  # else another instance publishes this interval
                    published[account_id] = await self._publish_report(report, now)
            await asyncio.sleep(0)
        self._set_gauges(reports)
        if held and self._on_pass is not None:
            self._on_pass(published, now)

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
        """Publish metrics and alerts, record what was alerted or halted, start a trip."""
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
        await self._service.publish(METRICS_SUBJECT, metrics)
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


def account_snapshot(engine: RiskEngine, account_id: str, now: int) -> dict[str, Any]:
    """Metrics (as on ``risk.metrics``) and open positions of an account, JSON-ready."""
    acct = engine.book.accounts.get(account_id)
    positions = (
        []
        if acct is None
        else [
            {"symbol": p.symbol, "quantity": p.quantity, "entry_price": p.entry_price}
            for p in acct.positions.values()
            if p.quantity != 0.0
        ]
    )
    body: dict[str, Any] = {"positions": positions}
    a = engine.assess(account_id, now)
    if a is not None:
        body["metrics"] = msgspec.to_builtins(
            metrics_msg(
                account_id,
                now,
                a.metrics,
                a.utilization,
                a.risk_level,
                a.trading_state,
                strategies=strategies_msg(a.strategies),
            )
        )
    return body


def global_snapshot(engine: RiskEngine, now: int) -> dict[str, Any]:
    """A one-line summary of every known account (for global trips and clears)."""
    accounts: dict[str, Any] = {}
    for account_id in engine.known_accounts():
        a = engine.assess(account_id, now)
        if a is not None:
            m = a.metrics
            accounts[account_id] = {
                "equity": m.equity,
                "gross_exposure": m.gross_exposure,
                "leverage": finite(m.leverage),
                "drawdown_max": m.drawdown_max,
                "risk_level": a.risk_level.value,
            }
    return {"accounts": accounts}


STATE_RECORD_NAMESPACE = uuid.UUID("7a0c4c55-2f1e-4f55-9d43-6b1f4d1f2a11")
"""uuid5 namespace of state-change record ids: one id per (bucket, key, revision)."""


def state_change_record(
    engine: RiskEngine, bucket: str, key: str, value: StateValue | None, revision: int
) -> StateChangeRecord | None:
    """The audit record of a trading-state transition seen by the watcher (None: not a
    trading-state key), with the account's snapshot (an account's key, or an automatic trip of
    a strategy of an account: ``strategy`` scope with both ids; all accounts' for the global,
    strategy and symbol scopes).

    Every instance records what its watcher sees under an id derived from (bucket, key,
    revision): the stream and the table keep one row per transition.
    """
    k = parse_state_key(key)
    if k is None:
        return None
    now = now_ms()
    # an automatic trip of an account is account-scoped, of a strategy of an account
    # strategy-scoped with both ids; unknown keys act globally
    account_id = k.account_id
    state = TradingState.ACTIVE if value is None else value.state
    snapshot = (
        global_snapshot(engine, now)
        if account_id is None
        else account_snapshot(engine, account_id, now)
    )
    return StateChangeRecord(
        id=str(uuid.uuid5(STATE_RECORD_NAMESPACE, f"{bucket}/{key}/{revision}")),
        occurred_at=value.updated_at if value and value.updated_at else now,
        scope=k.scope,  # type: ignore[arg-type]  # WIRE_SCOPE's values are the Literal's
        account_id=account_id,
        strategy_id=k.strategy_id,
        symbol=k.symbol,
        action="clear" if state is TradingState.ACTIVE else "trip",
        state=state.value,
        reason="" if value is None else value.reason,
        triggered_by="" if value is None else value.updated_by,
        source="operator" if value is None else value.source.value,
        revision=revision,
        account_snapshot=snapshot,
    )
