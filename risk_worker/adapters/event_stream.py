"""The ``RISK_EVENTS`` JetStream stream and the publisher that feeds it.

Audit records leave the check path through a bounded in-memory queue: ``record()`` never
blocks (a full queue drops the record, counts and logs it). A background task publishes them
to the stream with ``Nats-Msg-Id`` = the record's id, so a retried publish is stored once; the
``risk-sink`` consumer then writes them to PostgreSQL (see ``pg_sink``). The stream keeps them
for ``RISK_EVENTS_MAX_AGE`` whatever PostgreSQL does, so an outage delays rows, it loses none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import msgspec
import nats.errors
import nats.js.errors
from nats.js import api
from nats.js.client import JetStreamContext

from risk_worker.adapters.ratelog import RateLimitedLog
from risk_worker.adapters.streams import bind_stream
from risk_worker.wire.audit import StateChangeRecord, ViolationRecord

log = logging.getLogger(__name__)

STREAM = "RISK_EVENTS"
SUBJECTS = ["risk.events.>"]
VIOLATION_PREFIX = "risk.events.violation."
EMERGENCY_PREFIX = "risk.events.emergency."
DUPLICATE_WINDOW_S = 120.0
BATCH = 256
"""Records published concurrently per round (each waits for its own ack)."""

Record = ViolationRecord | StateChangeRecord


def subject_of(record: Record) -> str:
    """``risk.events.violation.<account_id>`` or ``risk.events.emergency.<scope>``."""
    if isinstance(record, ViolationRecord):
        return VIOLATION_PREFIX + record.account_id
    return EMERGENCY_PREFIX + record.scope


async def ensure_stream(js: JetStreamContext, max_age_s: float, replicas: int = 1) -> None:
    """Bind ``RISK_EVENTS``, creating it (file storage, ``replicas`` copies) or updating its
    max age and replica count as configured (:func:`~risk_worker.adapters.streams.bind_stream`).

    Raises:
        ServerUnavailableError: the stream can be neither read nor created (the message names
            ``RISK_EVENTS_REPLICAS`` when more than one replica was asked).
        nats.errors.Error: NATS failed otherwise.
    """
    config = api.StreamConfig(
        name=STREAM,
        subjects=SUBJECTS,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        max_age=max_age_s,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=replicas,
        description="risk-worker audit events: violations and emergency stops",
    )
    await bind_stream(js, config, "RISK_EVENTS_REPLICAS")


class EventStreamPublisher:
    """A :class:`~risk_worker.wire.audit.RiskEventSink` that publishes to ``RISK_EVENTS``.

    Args:
        js: JetStream context.
        queue_size: records held in memory at most (a full queue drops and counts).
        publish_timeout: seconds to wait for one publish's ack.
        on_failure: called for each dropped record and each failed publish (metrics).

    Attributes:
        published: records acknowledged by the stream.
        dropped: records dropped because the queue was full.
        failures: publish attempts that failed (each is retried).
    """

    def __init__(
        self,
        js: JetStreamContext,
        queue_size: int,
        publish_timeout: float = 2.0,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self._on_failure = on_failure
        self.reachable = True
        """False while publishing fails (the stream or NATS unavailable)."""
        self._js = js
        self._queue: asyncio.Queue[Record] = asyncio.Queue(maxsize=queue_size)
        self._timeout = publish_timeout
        self._encoder = msgspec.json.Encoder()
        self._task: asyncio.Task[None] | None = None
        self._ratelog = RateLimitedLog(log)
        self.published = 0
        self.dropped = 0
        self.failures = 0

    def record(self, record: Record) -> None:
        """Queue a record for the stream; never blocks, never raises."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1
            if self._on_failure is not None:
                self._on_failure()
            self._ratelog.warning(
                "queue-full",
                "audit queue full: dropped %s %s (%d dropped)",
                type(record).__name__,
                record.id,
                self.dropped,
            )

    @property
    def depth(self) -> int:
        """Records waiting to be published."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the background publisher."""
        self._task = asyncio.create_task(self._run(), name="event-publisher")

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Publish what is queued (up to ``timeout`` seconds), then stop."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.error(
                "audit queue not flushed within %s s: %d records not published", timeout, self.depth
            )
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = 0.05
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            while batch:
                results = await asyncio.gather(*(self._publish(r) for r in batch))
                failed = [r for r, ok in zip(batch, results, strict=True) if not ok]
                for _ in range(len(batch) - len(failed)):
                    self._queue.task_done()
                batch = failed
                if failed:  # NATS or the stream unavailable: back off (jittered), keep them
                    await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, 2.0)
                else:
                    delay = 0.05

    async def _publish(self, record: Record) -> bool:
        try:
            await self._js.publish(
                subject_of(record),
                self._encoder.encode(record),
                timeout=self._timeout,
                headers={"Nats-Msg-Id": record.id},
            )
        except (nats.errors.Error, TimeoutError) as exc:
            self.failures += 1
            self.reachable = False
            if self._on_failure is not None:
                self._on_failure()
            self._ratelog.warning("publish", "publishing audit record failed (retrying): %r", exc)
            return False
        self.published += 1
        self.reachable = True
        return True
