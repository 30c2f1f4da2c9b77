"""Wiring and lifecycle of one worker: connect in order, run, drain and close in reverse.

Start: NATS (retried within ``RISK_NATS_CONNECT_TIMEOUT``) → policies → KV bucket → trading-state
watcher → subscriptions → monitor loop. Stop (SIGTERM/SIGINT): monitor stops, NATS is drained
(in-flight checks are answered), the watcher stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import uuid
from collections.abc import Coroutine
from typing import Any

import msgspec
import nats
import nats.errors
import tenacity
from nats.aio.client import Client
from nats.js.kv import KeyValue

from risk_worker.adapters.kv_bucket import open_bucket, write_state
from risk_worker.adapters.nats_service import WorkerService, now_ms
from risk_worker.adapters.state_watcher import StateWatcher
from risk_worker.domain.engine import RiskEngine, trip_value
from risk_worker.domain.monitor import AccountReport, Trip
from risk_worker.domain.trading_state import account_key, scope_of_key
from risk_worker.domain.types import PolicyType, StateSource, TradingState
from risk_worker.errors import ServerUnavailableError, TradingStateError
from risk_worker.policy_source import PolicySource, StaticPolicySource
from risk_worker.settings import Settings
from risk_worker.sinks import (
    LogEventSink,
    RiskEventSink,
    StateChangeRecord,
    violation_record,
)
from risk_worker.wire_out import StateChangeMsg, alert_msg, metrics_msg

log = logging.getLogger(__name__)

METRICS_SUBJECT = "risk.metrics"
ALERTS_PREFIX = "risk.alerts."


class Worker:
    """One risk-worker instance.

    Args:
        settings: validated settings.
        policy_source: where the policies come from (built-in defaults when None).
        sink: where audit records go (structured log lines when None).
    """

    def __init__(
        self,
        settings: Settings,
        policy_source: PolicySource | None = None,
        sink: RiskEventSink | None = None,
    ) -> None:
        self.settings = settings
        self.policy_source = policy_source or StaticPolicySource()
        self.sink = sink or LogEventSink()
        self.engine = RiskEngine(
            settings.risk_config(),
            breaker_threshold=settings.breaker_threshold,
            breaker_window_ms=int(settings.breaker_window * 1000),
            alert_dedup_window_ms=int(settings.alert_dedup_window * 1000),
            worker_id=settings.worker_id,
        )
        self.nc: Client | None = None
        self.watcher: StateWatcher | None = None
        self.service: WorkerService | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._kv: KeyValue | None = None
        self._stopping = False

    async def start(self) -> None:
        """Connect and subscribe; raises ServerUnavailableError when NATS cannot be reached."""
        s = self.settings
        policies = self.engine.load_policies(await self.policy_source.load())
        log.info("loaded %d policies from %s", len(policies), self.policy_source.name)
        self.nc = nc = await self._connect()
        kv = await open_bucket(nc.jetstream(), s.kv_bucket)
        self.watcher = StateWatcher(
            kv, self.engine.states, s.state_max_age, s.state_confirm_interval, self._on_state_change
        )
        await self.watcher.start()
        self.service = WorkerService(
            nc, self.engine, self.watcher, s.worker_id, s.max_request_bytes, self.sink
        )
        await self.service.start()
        self._kv = kv
        self._monitor = asyncio.create_task(self._monitor_loop(), name="monitor")
        log.info(
            "risk-worker %s serving risk.check.order on %s (bucket %s)",
            s.worker_id,
            s.nats_url,
            s.kv_bucket,
        )

    async def stop(self) -> None:
        """Stop the monitor, drain NATS (answering in-flight checks), stop the watcher."""
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.drain()
        if self.watcher is not None:
            await self.watcher.stop()
        for task in list(self._tasks):
            task.cancel()
        log.info("risk-worker %s stopped", self.settings.worker_id)

    async def _connect(self) -> Client:
        s = self.settings

        async def disconnected() -> None:
            if self.watcher is not None:
                self.watcher.on_disconnect()
            if not self._stopping:
                log.warning("disconnected from NATS: trading state unconfirmed, checks denied")

        async def reconnected() -> None:
            log.info("reconnected to NATS %s", self.nc.connected_url if self.nc else "")
            if self.watcher is not None:
                self._spawn(self.watcher.on_reconnect())

        async def error(exc: Exception) -> None:
            log.warning("NATS error: %r", exc)

        # nats-py retries the first connection itself (max_reconnect_attempts=-1 covers it),
        # so one deadline bounds the whole attempt.
        try:
            return await asyncio.wait_for(
                nats.connect(
                    s.nats_url,
                    name=f"risk-worker {s.worker_id}",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25,
                    ping_interval=2,
                    max_outstanding_pings=2,
                    connect_timeout=2,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=error,
                ),
                timeout=s.nats_connect_timeout,
            )
        except (OSError, nats.errors.Error, TimeoutError) as exc:
            raise ServerUnavailableError(
                f"cannot connect to NATS at {s.nats_url} within {s.nats_connect_timeout} s "
                f"(RISK_NATS_URL): {exc!r}"
            ) from exc

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_state_change(self, key: str) -> None:
        log.warning("trading state %s is now %s", key, self._describe(key))

    def _describe(self, key: str) -> str:
        states = self.engine.states
        scope = scope_of_key(key)
        account_id = None if scope is None else scope[1]
        v = states.global_value if account_id is None else states.account_value(account_id)
        return "ACTIVE" if v is None else f"{v.state} ({v.source}: {v.reason})"

    async def _monitor_loop(self) -> None:
        interval = self.settings.monitor_interval
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            # A fixed schedule; a pass that overran skips the ticks it missed (no burst).
            next_at = max(next_at + interval, loop.time())
            await asyncio.sleep(next_at - loop.time())
            try:
                await self._monitor_once()
            except Exception:
                log.exception("monitor pass failed")

    async def _monitor_once(self) -> None:
        now = now_ms()
        for report in self.engine.monitor(now):
            await self._publish_report(report, now)

    async def _publish_report(self, r: AccountReport, now: int) -> None:
        """Publish metrics and alerts, record what was alerted or halted, start a trip."""
        assert self.service is not None
        metrics = metrics_msg(
            r.account_id, now, r.metrics, r.utilization, r.risk_level, r.trading_state
        )
        await self.service.publish(METRICS_SUBJECT, metrics)
        for draft in r.alerts:
            await self.service.publish(
                ALERTS_PREFIX + draft.level.value, alert_msg(draft, uuid.uuid4().hex, now)
            )
            caused = _caused(r.trip, draft.evaluation.policy.type)
            self.sink.record(
                violation_record(
                    draft.evaluation,
                    r.account_id,
                    now,
                    "monitor",
                    "halted" if caused else "alerted",
                )
            )
        if r.trip is not None:
            snapshot = {
                "metrics": msgspec.to_builtins(metrics),
                "positions": self._positions(r.account_id),
            }
            await self._announce_trip(r.trip, now, snapshot)
            self._spawn(self._record_trip(r.trip, now))

    def _positions(self, account_id: str) -> list[dict[str, object]]:
        acct = self.engine.book.accounts.get(account_id)
        if acct is None:
            return []
        return [
            {"symbol": p.symbol, "quantity": p.quantity, "entry_price": p.entry_price}
            for p in acct.positions.values()
            if p.quantity != 0.0
        ]

    async def _announce_trip(self, trip: Trip, now: int, snapshot: dict[str, object]) -> None:
        """Publish and record the halt at once: it is in force here from this moment."""
        assert self.service is not None
        worker = self.settings.worker_id
        log.error("halting account %s (%s): %s", trip.account_id, trip.source, trip.reason)
        await self.service.publish(
            ALERTS_PREFIX + "emergency",
            StateChangeMsg(
                level="emergency",
                type="emergency_stop",
                scope="account",
                account_id=trip.account_id,
                state=TradingState.HALTED,
                reason=trip.reason,
                triggered_by=worker,
                timestamp=now,
                source=trip.source.value,
            ),
        )
        self.sink.record(
            StateChangeRecord(
                id=str(uuid.uuid4()),
                occurred_at=now,
                scope="account",
                account_id=trip.account_id,
                action="trip",
                state=TradingState.HALTED.value,
                reason=trip.reason,
                triggered_by=worker,
                source=trip.source.value,
                account_snapshot=snapshot,
            )
        )

    async def _record_trip(self, trip: Trip, now: int) -> None:
        """Write an automatic trip to the bucket (retried) so every instance sees it."""
        assert self._kv is not None
        value = trip_value(trip, self.settings.worker_id, now)
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(TradingStateError),
            wait=tenacity.wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.2),
            stop=tenacity.stop_after_delay(300),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await write_state(self._kv, account_key(trip.account_id), value)
        except TradingStateError as exc:
            log.error(
                "could not record the halt of %s in the bucket for 300 s; it is halted "
                "on this instance only: %s",
                trip.account_id,
                exc,
            )


def _caused(trip: Trip | None, policy_type: PolicyType) -> bool:
    """Whether a violation of this type caused the trip (emergency policy, or the breaker)."""
    if trip is None:
        return False
    if trip.source is StateSource.CIRCUIT_BREAKER:
        return policy_type is PolicyType.HARD
    return policy_type is PolicyType.EMERGENCY


async def serve(settings: Settings, policy_source: PolicySource | None = None) -> None:
    """Run a worker until SIGTERM or SIGINT, then drain and return."""
    worker = Worker(settings, policy_source)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await worker.start()
        await stop.wait()
        log.info("signal received: draining")
    finally:
        await worker.stop()
