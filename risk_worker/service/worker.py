"""Wiring and lifecycle of one worker: connect in order, run, drain and close in reverse.

Start: NATS (within ``RISK_NATS_CONNECT_TIMEOUT``) → ``RISK_EVENTS`` stream and its publisher →
PostgreSQL pool and policies (or the built-in set without ``RISK_DATABASE_URL``) → the Redis
snapshot and the ``RISK_INPUTS`` replay (:mod:`~risk_worker.service.inputs_task`) → KV bucket →
trading-state watcher → subscriptions → monitor, policy reload and the ``risk-sink`` consumer.
Stop (SIGTERM/SIGINT): background tasks stop, subscriptions drain (in-flight checks are
answered), the audit queue is flushed to the stream, NATS drains, the pool closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
from nats.aio.client import Client

from risk_worker import _core
from risk_worker.adapters.check_handler import CheckHandler
from risk_worker.adapters.event_stream import EventStreamPublisher, ensure_stream
from risk_worker.adapters.http_server import HttpServer
from risk_worker.adapters.input_stream import InputStream
from risk_worker.adapters.kv_bucket import open_bucket
from risk_worker.adapters.lease import Lease
from risk_worker.adapters.membership import Members
from risk_worker.adapters.nats_service import WorkerService
from risk_worker.adapters.pg_policies import PgPolicySource
from risk_worker.adapters.pg_sink import PgEventSink
from risk_worker.adapters.redis_store import connect_redis
from risk_worker.adapters.state_watcher import StateWatcher
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Decision
from risk_worker.domain.trading_state import StateValue
from risk_worker.domain.types import DenyReason, PolicyType
from risk_worker.service.inputs_task import restore_and_replay
from risk_worker.service.kill_switch import KillSwitch
from risk_worker.service.monitor_task import MonitorTask
from risk_worker.service.nats_connect import connect_worker
from risk_worker.service.observability import Metrics
from risk_worker.service.policy_source import FilePolicySource, PolicySource, StaticPolicySource
from risk_worker.service.policy_task import PolicyReloader
from risk_worker.service.settings import Settings, redact, redact_servers
from risk_worker.service.snapshot_task import SnapshotKeeper
from risk_worker.service.startup import startup_step
from risk_worker.service.state_records import state_change_record
from risk_worker.service.var_task import VarSampler
from risk_worker.wire.audit import RiskEventSink
from risk_worker.wire.metrics_gate import MetricsGate

log = logging.getLogger(__name__)


class Worker:
    """One risk-worker instance.

    Args:
        settings: validated settings.
        policy_source: where the policies come from (default: PostgreSQL when
            ``RISK_DATABASE_URL`` is set, else the built-in set).
        sink: where audit records go (default: the ``RISK_EVENTS`` stream).
    """

    def __init__(
        self,
        settings: Settings,
        policy_source: PolicySource | None = None,
        sink: RiskEventSink | None = None,
    ) -> None:
        self.settings = settings
        self.engine = RiskEngine(
            settings.risk_config(),
            breaker_threshold=settings.breaker_threshold,
            breaker_window_ms=int(settings.breaker_window * 1000),
            alert_dedup_window_ms=int(settings.alert_dedup_window * 1000),
            worker_id=settings.worker_id,
            tick_max_jump=settings.tick_max_jump,
            tick_confirmations=settings.tick_confirmations,
            max_symbols=settings.max_symbols,
            auto_trip_state=settings.auto_trip_state,
        )
        self._policy_source = policy_source
        self._sink = sink
        self.metrics = Metrics()
        self.http: HttpServer | None = None
        self.snapshots: SnapshotKeeper | None = None
        self.inputs: InputStream | None = None
        self.lease: Lease | None = None
        self.members: Members | None = None
        self.nc: Client | None = None
        self.pool: asyncpg.Pool | None = None
        self.publisher: EventStreamPublisher | None = None
        self.pg_sink: PgEventSink | None = None
        self.watcher: StateWatcher | None = None
        self.service: WorkerService | None = None
        self.policies: PolicyReloader | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._monitor: asyncio.Task[None] | None = None
        self.var: VarSampler | None = None
        self._stopping = False
        self.kill_switch = KillSwitch(
            self.engine, lambda: self.lease, lambda: self.service, self._spawn
        )

    @property
    def sink(self) -> RiskEventSink:
        """Where audit records go."""
        assert self._sink is not None, "the worker is not started"
        return self._sink

    async def start(self) -> None:
        """Connect and subscribe.

        Raises:
            ServerUnavailableError: NATS cannot be reached.
            PolicyUnavailableError: no policy set can be loaded and no fallback is allowed.
        """
        s = self.settings
        log.info("decision core: %s (%s)", _core.STATUS.active, _core.STATUS.reason)
        self.http = HttpServer(
            self.metrics.registry,
            asyncio.get_running_loop(),
            self.readiness,
            s.http_host,
            s.http_port,
        )
        self.http.start()  # first, so probes answer (not ready) while the rest starts
        self.nc = nc = await self._connect()
        js = nc.jetstream()
        await startup_step("RISK_EVENTS", ensure_stream, js, s.events_max_age, s.events_replicas)
        if self._sink is None:
            self.publisher = EventStreamPublisher(
                js, s.event_queue_size, on_failure=self.metrics.persist_failure
            )
            self.publisher.start()
            self._sink = self.publisher
        source = self._policy_source
        if s.database_url:
            self.pool = await asyncpg.create_pool(
                s.database_url, min_size=0, max_size=4, timeout=5, command_timeout=10
            )
            source = source or PgPolicySource(s.database_url, pool=self.pool)
        elif source is None and s.policy_file:
            source = FilePolicySource(Path(s.policy_file))
            log.warning(
                "RISK_DATABASE_URL is not set: policies from %s, no PostgreSQL audit", s.policy_file
            )
        elif source is None:
            log.warning("RISK_DATABASE_URL is not set: built-in policies, no PostgreSQL audit")
        self.policies = PolicyReloader(
            self.engine, source or StaticPolicySource(), s.policy_reload_interval
        )
        await self.policies.load_initial(s.policy_fallback == "defaults")
        self.inputs, self.snapshots = await restore_and_replay(js, self.engine, s, self.metrics)
        kv = await startup_step("the KV bucket", open_bucket, js, s.kv_bucket, s.kv_replicas)
        self.lease = Lease(kv, s.worker_id, s.lease_ttl)
        self.members = members = Members(kv, s.worker_id, s.monitor_interval, s.lease_ttl)
        self.watcher = StateWatcher(
            kv,
            self.engine.states,
            s.state_max_age,
            s.state_confirm_interval,
            self._on_state_change,
            members.on_key,
        )
        await startup_step("the trading-state watcher", self.watcher.start)
        checks = CheckHandler(
            self.engine,
            self.watcher.confirmed,
            s.worker_id,
            s.max_request_bytes,
            self.sink,
            self._checked,
            members.owner_of,
            self.metrics.check_forwarded,
        )
        self.service = WorkerService(
            nc,
            self.engine,
            self.watcher,
            s.worker_id,
            checks,
            self.metrics,
            s.services_protocol,
            s.reply_prefixes,
            s.max_batch,
        )
        await self.service.start()
        members.start()
        monitor = MonitorTask(
            self.engine,
            self.service,
            self.sink,
            kv,
            s.worker_id,
            s.monitor_interval,
            self._spawn,
            self.metrics,
            lambda: 0 if self.publisher is None else self.publisher.depth,
            self.snapshots.submit if self.snapshots is not None else None,
            self.lease,
            self.watcher.confirmed,
            self.kill_switch.catch_up,
            MetricsGate(s.metrics_change_threshold, int(s.metrics_max_interval * 1000)),
        )
        await self.kill_switch.start(nc)
        self._monitor = asyncio.create_task(monitor.run(), name="monitor")
        self.var = VarSampler(self.engine, connect_redis(s.redis_url) if s.redis_url else None)
        await self.var.restore()
        await self.var.listen(nc)
        self._spawn(self.var.run())
        self.policies.start()
        if self.pool is not None:
            self.pg_sink = PgEventSink(js, self.pool, on_failure=self.metrics.persist_failure)
            await startup_step("the risk-sink consumer", self.pg_sink.start)
        log.info(
            "risk-worker %s serving risk.check.order on %s (bucket %s, database %s)",
            s.worker_id,
            redact_servers(s.nats_url),
            s.kv_bucket,
            redact(s.database_url) if s.database_url else "none",
        )

    async def stop(self) -> None:
        """Stop tasks, drain subscriptions, flush the audit queue, drain NATS, close the rest.

        Every step is bounded: one that does not finish in time is abandoned and named in the
        log, so SIGTERM always ends the process.
        """
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
            await _bounded("monitor", _finish(self._monitor), 5.0)
        if self.policies is not None:
            await _bounded("policy reload", self.policies.stop(), 5.0)
        if self.lease is not None:  # another instance takes over at once
            await _bounded("lease release", self.lease.release(), 3.0)
        if self.members is not None:  # the others own this instance's accounts now
            await _bounded("membership", self.members.stop(), 3.0)
        if self.inputs is not None:
            await _bounded("RISK_INPUTS consumer", self.inputs.stop(), 3.0)
        if self.service is not None:
            await _bounded("subscriptions", self.service.stop(), 12.0)
        if self.publisher is not None:
            await _bounded("audit queue", self.publisher.stop(), 12.0)
        if self.pg_sink is not None:
            await _bounded("risk-sink", self.pg_sink.stop(), 8.0)
        if (
            self.nc is not None
            and not self.nc.is_closed
            and not await _bounded("NATS drain", self.nc.drain(), 10.0)
        ):
            await _bounded("NATS close", self.nc.close(), 3.0)
        if self.watcher is not None:
            await _bounded("state watcher", self.watcher.stop(), 5.0)
        if self.snapshots is not None:
            await _bounded("Redis snapshots", self.snapshots.stop(), 5.0)
        for task in list(self._tasks):
            task.cancel()
        if self.var is not None:
            await _bounded("VaR samples", self.var.close(), 3.0)
        if self.pool is not None:
            await _bounded("PostgreSQL pool", self.pool.close(), 5.0)
        if self.http is not None:
            await _bounded("HTTP server", asyncio.to_thread(self.http.stop), 5.0)
        log.info("risk-worker %s stopped", self.settings.worker_id)

    async def _connect(self) -> Client:
        s = self.settings

        async def disconnected() -> None:
            if self.watcher is not None:
                self.watcher.on_disconnect()
            if not self._stopping:
                log.warning("disconnected from NATS: trading state unconfirmed, checks denied")

        async def reconnected() -> None:
            url = self.nc.connected_url if self.nc else None  # a ParseResult: may hold a password
            log.info("reconnected to NATS %s", redact_servers(url.geturl()) if url else "")
            self.metrics.reconnect()
            if self.watcher is not None:
                self._spawn(self.watcher.on_reconnect())

        async def error(exc: Exception) -> None:
            log.warning("NATS error: %r", exc)

        return await connect_worker(
            s,
            f"risk-worker {s.worker_id}",
            "connect to NATS",
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )

    def readiness(self) -> dict[str, object]:
        """What ``/ready`` reports (runs on the event loop): every part but Redis required."""
        publisher = self.publisher
        return {
            "nats": "connected" if self.nc is not None and self.nc.is_connected else "disconnected",
            "trading_state": "confirmed"
            if self.watcher is not None and self.watcher.confirmed()
            else "unconfirmed",
            "policies": "loaded" if self.engine.policies is not None else "missing",
            "event_stream": "reachable"
            if self.nc is not None
            and self.nc.is_connected
            and (publisher is None or publisher.reachable)
            else "unreachable",
            "inputs": "caught_up" if self.inputs and self.inputs.caught_up else "replaying",
            "redis": "disabled" if self.snapshots is None else self.snapshots.status,
            "decision_core": _core.STATUS.active,
        }

    def _checked(self, decision: Decision, seconds: float) -> None:
        reason = decision.reason
        self.metrics.checks.add(reason, seconds)
        if reason is None:  # approved: no violation to count
            return
        if reason is DenyReason.RESTRICTED_SYMBOL:  # recorded as a violation too
            self.metrics.violation(PolicyType.HARD, "pre_trade")
        for violation in decision.violations:
            self.metrics.violation(violation.policy.type, "pre_trade")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_state_change(self, key: str, value: StateValue | None, revision: int) -> None:
        """Log a trading-state transition and record it (with the snapshot) for the audit; a
        HALT releases reservations and is announced (:class:`KillSwitch`)."""
        record = state_change_record(self.engine, self.settings.kv_bucket, key, value, revision)
        if record is not None:
            log.warning(
                "trading state %s is now %s%s",
                key,
                record.state,
                f" ({record.source}: {record.reason})" if value else "",
            )
            self.sink.record(record)
        self.kill_switch.on_change(key, value, revision)


async def _finish(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _bounded(step: str, work: Awaitable[Any], timeout: float) -> bool:  # noqa: ASYNC109
    """Await one step of a stop; False (and an error naming it) when it failed or timed out."""
    try:
        await asyncio.wait_for(work, timeout)
    except TimeoutError:
        log.error("stopping: %s did not finish within %s s; abandoned", step, timeout)
        return False
    except Exception:
        log.exception("stopping: %s failed", step)
        return False
    return True


async def serve(settings: Settings, policy_source: PolicySource | None = None) -> None:
    """Run a worker until SIGTERM, SIGINT or SIGHUP, then drain and return.

    SIGHUP (the terminal closed) stops like Ctrl-C: the worker has nothing to reload, and the
    default action would end the process without draining (and, under ``dev``, orphan the
    embedded servers).
    """
    worker = Worker(settings, policy_source)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        await worker.start()
        await stop.wait()
        log.info("signal received: draining")
    finally:
        await worker.stop()
