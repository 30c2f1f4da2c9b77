"""The ``risk-sink`` consumer: audit records from ``RISK_EVENTS`` into PostgreSQL.

One durable pull consumer, shared by every worker instance, so each record is inserted by one of
them. Batches of up to 500 records or 100 ms are inserted in one transaction with
``ON CONFLICT (id) DO NOTHING`` and acknowledged only after the commit: a redelivery (after a
crash, or an ack lost on the way) is harmless, and a database outage leaves the records in the
stream until it is back. A record PostgreSQL refuses for its content (not for being unreachable)
is terminated and logged so it cannot block the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, TypeAlias

import asyncpg
import msgspec
import nats.errors
import tenacity
from asyncpg.pool import PoolConnectionProxy
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext

from risk_worker.adapters.event_stream import STREAM, SUBJECTS
from risk_worker.errors import RiskWorkerError
from risk_worker.wire.audit import StateChangeRecord, ViolationRecord
from risk_worker.wire.trace import trace_id

log = logging.getLogger(__name__)

DURABLE = "risk-sink"
BATCH_MAX = 500
BATCH_WAIT_S = 0.1
ACK_WAIT_S = 10.0
"""A batch held by an instance that died is redelivered to another after this."""
STOP_GRACE_S = 5.0
HOLD_S = 5.0
"""How long a batch is held while PostgreSQL is retried (well under the ack wait)."""
NAK_DELAY_S = 2.0
"""After that, the batch is handed back and redelivered this much later."""
CONTENT_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
"""SQLSTATE classes 22 and 23: the record's own values are refused. Only these terminate a
record; anything else (no table, no privilege, server down) leaves it in the stream."""


class SinkBlockedError(RiskWorkerError):
    """PostgreSQL refused a batch for a reason that is not the records' content."""


RETRYABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    TimeoutError,
    SinkBlockedError,
)

_VIOLATION = msgspec.json.Decoder(ViolationRecord)
_STOP = msgspec.json.Decoder(StateChangeRecord)
_INSERT_VIOLATION = """
INSERT INTO risk_violations (id, occurred_at, account_id, policy_id, policy_name, policy_type,
    metric, metric_value, threshold_value, source, order_id, action_taken, context)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb)
ON CONFLICT (id) DO NOTHING"""
_INSERT_STOP = """
INSERT INTO emergency_stops (id, occurred_at, scope, account_id, action, state, reason,
    triggered_by, source, revision, account_snapshot, strategy_id, symbol)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13)
ON CONFLICT (id) DO NOTHING"""
_ENC = msgspec.json.Encoder()
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


def _when(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def violation_args(r: ViolationRecord) -> tuple[Any, ...]:
    """Row values of a violation record (``symbol``, ``rejection_reason``, ``strategy_id`` and
    the check's ``traceparent`` with its ``trace_id`` go into ``context``)."""
    ctx: dict[str, str] = {}
    if r.symbol:
        ctx["symbol"] = r.symbol
    if r.strategy_id:
        ctx["strategy_id"] = r.strategy_id
    if r.rejection_reason:
        ctx["rejection_reason"] = r.rejection_reason
    if r.traceparent:
        ctx["traceparent"] = r.traceparent
        ctx["trace_id"] = trace_id(r.traceparent)
    context = _ENC.encode(ctx).decode()
    return (
        r.id,
        _when(r.occurred_at),
        r.account_id,
        r.policy_id,
        r.policy_name,
        r.policy_type,
        r.metric,
        r.metric_value,
        r.threshold_value,
        r.source,
        r.order_id,
        r.action_taken,
        context,
    )


def stop_args(r: StateChangeRecord) -> tuple[Any, ...]:
    """Row values of an emergency-stop record."""
    snapshot = None if r.account_snapshot is None else _ENC.encode(r.account_snapshot).decode()
    return (
        r.id,
        _when(r.occurred_at),
        r.scope,
        r.account_id,
        r.action,
        r.state,
        r.reason,
        r.triggered_by,
        r.source,
        r.revision,
        snapshot,
        r.strategy_id,
        r.symbol,
    )


class PgEventSink:
    """Consumes ``RISK_EVENTS`` into ``risk_violations`` and ``emergency_stops``.

    Args:
        js: JetStream context.
        pool: asyncpg pool of the audit database.
        on_failure: called for each batch left in the stream and each record refused.

    Attributes:
        inserted: records committed (including ones already present).
        failures: batches that failed for a retryable reason and were left in the stream.
        rejected: records terminated because PostgreSQL refused their content.
    """

    def __init__(
        self,
        js: JetStreamContext,
        pool: asyncpg.Pool,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self._on_failure = on_failure or (lambda: None)
        self._js = js
        self._pool = pool
        self._task: asyncio.Task[None] | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._stopping = False
        self._in_hand: list[Msg] = []
        self.inserted = 0
        self.failures = 0
        self.rejected = 0

    async def start(self) -> None:
        """Bind (or create) the durable consumer and start consuming."""
        config = api.ConsumerConfig(
            durable_name=DURABLE,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_S,
            max_ack_pending=20_000,
        )
        sub = await self._js.pull_subscribe(
            SUBJECTS[0], durable=DURABLE, stream=STREAM, config=config
        )
        self._sub = sub
        self._task = asyncio.create_task(self._run(sub), name="pg-sink")

    async def stop(self) -> None:
        """Finish the batch in hand (bounded by a grace period), then unsubscribe.

        When the grace runs out (PostgreSQL still down), the batch in hand is negatively
        acknowledged so another instance gets it at once rather than after the ack wait.
        """
        self._stopping = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_S)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                for msg in self._in_hand:
                    with contextlib.suppress(nats.errors.Error):
                        await msg.nak()
            except Exception:  # the task failed (and logged why): stopping goes on
                log.debug("the sink task ended with an error", exc_info=True)
        if self._sub is not None:
            # An interrupted fetch leaves the subscription busy: without this, draining the
            # connection waits for its drain timeout (30 s).
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None

    async def _run(self, sub: JetStreamContext.PullSubscription) -> None:
        while not self._stopping:
            self._in_hand = []
            try:
                msgs = self._in_hand = await sub.fetch(BATCH_MAX, timeout=BATCH_WAIT_S)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.Error as exc:
                log.warning("fetching audit records failed: %r", exc)
                await asyncio.sleep(1.0)
                continue
            try:
                await self._write_retrying(msgs)
            except RETRYABLE as exc:
                log.warning(
                    "PostgreSQL unavailable, %d audit records stay in the stream: %r",
                    len(msgs),
                    exc,
                )
                await self._hand_back(msgs)
            except Exception:  # the sink must never die: the audit trail would stop silently
                log.exception("writing %d audit records failed; they stay in the stream", len(msgs))
                with contextlib.suppress(Exception):
                    await self._pool.expire_connections()  # start over on fresh connections
                await self._hand_back(msgs)

    async def _hand_back(self, msgs: list[Msg]) -> None:
        """Leave a batch in the stream: redelivered (here or elsewhere) after a short delay."""
        self.failures += 1
        self._on_failure()
        for msg in msgs:
            with contextlib.suppress(nats.errors.Error):
                await msg.nak(delay=NAK_DELAY_S)
        self._in_hand = []
        await asyncio.sleep(NAK_DELAY_S / 4)

    async def _write_retrying(self, msgs: list[Msg]) -> None:
        """Write a batch, retrying connection failures (jittered backoff) for a few seconds
        while the batch is held; after that it goes back to the stream."""
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(RETRYABLE),
            wait=tenacity.wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.2),
            stop=tenacity.stop_after_delay(HOLD_S),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._write(msgs)

    async def _write(self, msgs: list[Msg]) -> None:
        violations: list[tuple[Msg, tuple[Any, ...]]] = []
        stops: list[tuple[Msg, tuple[Any, ...]]] = []
        for msg in msgs:
            try:
                if ".violation." in msg.subject:
                    violations.append((msg, violation_args(_VIOLATION.decode(msg.data))))
                else:
                    stops.append((msg, stop_args(_STOP.decode(msg.data))))
            except msgspec.MsgspecError as exc:
                await self._reject(msg, exc)
        async with self._pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await self._insert(conn, violations, stops)
            except CONTENT_ERRORS:
                await self._one_by_one(conn, violations, stops)
                return
            except asyncpg.PostgresError as exc:
                raise _blocked(exc) from exc
        self.inserted += len(violations) + len(stops)
        for msg, _ in violations + stops:
            with contextlib.suppress(nats.errors.Error):
                await msg.ack()

    @staticmethod
    async def _insert(
        conn: Conn,
        violations: list[tuple[Msg, tuple[Any, ...]]],
        stops: list[tuple[Msg, tuple[Any, ...]]],
    ) -> None:
        if violations:
            await conn.executemany(_INSERT_VIOLATION, [args for _, args in violations])
        if stops:
            await conn.executemany(_INSERT_STOP, [args for _, args in stops])

    async def _one_by_one(
        self,
        conn: Conn,
        violations: list[tuple[Msg, tuple[Any, ...]]],
        stops: list[tuple[Msg, tuple[Any, ...]]],
    ) -> None:
        """A batch was refused: insert each record alone; terminate the ones refused."""
        for query, items in ((_INSERT_VIOLATION, violations), (_INSERT_STOP, stops)):
            for msg, args in items:
                try:
                    await conn.execute(query, *args)
                except CONTENT_ERRORS as exc:
                    await self._reject(msg, exc)
                    continue
                except asyncpg.PostgresError as exc:
                    raise _blocked(exc) from exc
                self.inserted += 1
                with contextlib.suppress(nats.errors.Error):
                    await msg.ack()

    async def _reject(self, msg: Msg, exc: Exception) -> None:
        self.rejected += 1
        self._on_failure()
        log.error(
            "audit record on %s refused, dropped from the stream: %s; %r",
            msg.subject,
            exc,
            msg.data[:500],
        )
        with contextlib.suppress(nats.errors.Error):
            await msg.term()


def _blocked(exc: asyncpg.PostgresError) -> SinkBlockedError:
    hint = (
        " (is the schema migrated? risk-worker db migrate)"
        if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError)
        else ""
    )
    return SinkBlockedError(f"{type(exc).__name__}: {exc}{hint}")
