"""The ``market.tick.*`` feed: ticks taken from their subscription in batches and applied.

Ticks are the worker's busiest input (hundreds of thousands a second), so what a tick costs
beyond nats-py's own parsing is kept to a minimum. A subscription with a callback costs, per
message, a queue ``get`` coroutine, the callback's coroutine and an await of each; this feed's
subscription has no callback. Its task waits for the first pending message, then takes what
else is pending (up to ``max_batch``) without awaiting, and for the batch:

- decodes each tick (:func:`~risk_worker.wire.ticks.parse_tick`); an invalid one is dropped,
  counted in ``risk_events_invalid_total`` and logged (rate-limited), as before;
- reads the clock once: every tick of the batch had been received by then;
- applies the valid ones in one call, in the order received
  (:meth:`~risk_worker.domain.engine.RiskEngine.set_marks`: the suspect-tick filter, the
  symbol limit and the VaR sampling of every tick, as :meth:`set_mark` one by one);
- counts them in a plain int added to ``risk_events_total`` once, and the few not simply
  applied as before (ignored, logged), all before anything is awaited, then publishes the
  batch's ``suspect_tick`` alerts;
- marks each message done, then yields to the event loop when more are pending, so checks are
  answered between batches.

nats-py has no public call that takes a pending message without awaiting. The feed uses the
subscription's pending queue, an :class:`asyncio.Queue` (``Subscription._pending_queue`` in
nats-py 2.x), through the queue's own ``get_nowait`` and ``task_done`` only; nothing of nats-py
is patched, and the subscription's ``drain`` still waits until every received tick is applied
(nats-py's count of the subscription's pending bytes is not decreased: no limit is set on it).
Were that attribute missing (another nats-py), the feed falls back to a callback subscription
that handles each message as a batch of one: slower, the same behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from risk_worker.adapters.check_handler import now_ms
from risk_worker.adapters.ratelog import RateLimitedLog
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.marks import HeldTick
from risk_worker.domain.types import TickResult
from risk_worker.errors import InvalidMessageError
from risk_worker.wire.outbound import AlertMsg, suspect_tick_alert
from risk_worker.wire.ticks import parse_tick

log = logging.getLogger(__name__)

TICKS_SUBJECT = "market.tick.*"
SUSPECT_TICK_SUBJECT = "risk.alerts.warning"
"""Where ``suspect_tick`` alerts go."""
KIND = "market.tick"
"""The ``kind`` label of the tick counters."""
MAX_BATCH = 4_096
"""Most ticks applied between two yields to the event loop (about 10 ms of work at most).

Not smaller: nats-py's reader parses all it has buffered (up to about 160 KB, some 1,800
ticks) each time it runs, and the feed runs once between two of its turns; taking fewer than
that per turn, the feed falls behind a reader that is not (256 applied 3,000 ticks/s of 50,000
on the bench's ladder)."""


class TickCounters(Protocol):
    """What the feed counts (the service's Prometheus metrics satisfy it)."""

    def events(self, kind: str, n: int) -> None:
        """Count ``n`` valid events of ``kind``, applied."""

    def event(self, kind: str, result: str = "applied") -> None:
        """Count one valid event of ``kind``; ``result`` applied or why it was not."""

    def invalid_event(self, kind: str, reason: str) -> None:
        """Count one dropped invalid event (``reason``: an ``InvalidMessageError`` code)."""

    def alert(self, level: str) -> None:
        """Count one published alert of ``level``."""


Publish = Callable[[str, msgspec.Struct], Awaitable[None]]
"""Publish one outbound message (subject, Struct) as JSON."""


def pending_queue(sub: Subscription) -> asyncio.Queue[Msg] | None:
    """The queue nats-py puts a subscription's received messages in (one without a callback
    is read by nobody else); None when this nats-py has none."""
    queue = getattr(sub, "_pending_queue", None)
    return queue if isinstance(queue, asyncio.Queue) else None


class TickFeed:
    """Subscribes to ``market.tick.*`` (every instance: no queue group) and applies the ticks.

    Args:
        nc: a connected client.
        engine: the decision core (its mark table).
        metrics: the tick counters.
        publish: publishes a ``suspect_tick`` alert.
        max_batch: most ticks taken between two yields to the event loop (count ≥ 1).
    """

    def __init__(
        self,
        nc: Client,
        engine: RiskEngine,
        metrics: TickCounters,
        publish: Publish,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be ≥ 1")
        self._nc = nc
        self._engine = engine
        self._metrics = metrics
        self._publish = publish
        self._max_batch = max_batch
        self._ratelog = RateLimitedLog(log)
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe (without a pending limit, as every event subscription) and start taking."""
        sub = await self._nc.subscribe(TICKS_SUBJECT, pending_msgs_limit=-1, pending_bytes_limit=-1)
        queue = pending_queue(sub)
        if queue is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(queue), name="ticks")
        else:  # not the nats-py this was written for: one message per callback
            log.warning("nats-py subscription without a pending queue: ticks by callback")
            await sub.unsubscribe()
            sub = await self._nc.subscribe(
                TICKS_SUBJECT, cb=self._on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1
            )
        self._sub = sub

    async def stop(self) -> None:
        """Unsubscribe and apply every tick already received (the subscription's drain waits
        until each is marked done), then end the task. Cancelled (a bounded stop gave up), the
        task ends all the same."""
        sub, self._sub = self._sub, None
        try:
            if sub is not None:
                await sub.drain()  # type: ignore[no-untyped-call]  # nats-py
        finally:
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                await asyncio.wait({task})

    async def _run(self, queue: asyncio.Queue[Msg]) -> None:
        """Take, apply and mark done batches of pending ticks until cancelled."""
        more = self._max_batch - 1
        while True:
            batch = [await queue.get()]
            try:
                get, append = queue.get_nowait, batch.append
                for _ in range(min(queue.qsize(), more)):
                    append(get())
                await self._handle(batch)
            finally:
                for _ in batch:
                    queue.task_done()
            if not queue.empty():
                await asyncio.sleep(0)  # checks pending behind the ticks go first

    async def _on_msg(self, msg: Msg) -> None:
        """The callback of the fallback subscription: one tick."""
        await self._handle([msg])

    async def _handle(self, batch: list[Msg]) -> None:
        """Apply one batch, then publish its alerts; an unexpected error is logged and the
        next batch goes on."""
        try:
            alerts = [self._held(tick) for tick in self._apply(batch)]
            for alert in filter(None, alerts):
                await self._publish(SUSPECT_TICK_SUBJECT, alert)
                self._metrics.alert("warning")
        except Exception:  # as nats-py does with a callback's error: the feed keeps running
            log.exception("applying a batch of %d ticks failed", len(batch))

    def _apply(self, batch: list[Msg]) -> list[HeldTick]:
        """Decode, apply and count ``batch``; the ticks not simply applied are returned."""
        now = now_ms()
        ticks: list[tuple[str, float, int | None]] = []
        append, parse = ticks.append, parse_tick
        for msg in batch:
            try:
                append(parse(msg.data, msg.subject))
            except InvalidMessageError as exc:
                self._metrics.invalid_event(KIND, exc.reason)
                self._ratelog.warning(
                    f"{KIND}:{exc.reason}", "dropped invalid %s event: %s", KIND, exc
                )
        held = self._engine.set_marks(ticks, now) if ticks else []
        ignored = sum(1 for tick in held if tick.result is not TickResult.CONFIRMED)
        if len(ticks) > ignored:
            self._metrics.events(KIND, len(ticks) - ignored)
        return held

    def _held(self, tick: HeldTick) -> AlertMsg | None:
        """Count (as ignored) and log (rate-limited per symbol) a tick held as suspect or
        refused, log a confirmed suspect level (counted applied with its batch); the
        ``suspect_tick`` alert of a new suspect level (once per symbol per alert window)."""
        symbol, price, result, mark = tick
        if result is TickResult.CONFIRMED:
            self._ratelog.warning(
                f"{KIND}:confirmed:{symbol}",
                "suspect level of %s confirmed: %s is the mark now",
                symbol,
                price,
            )
            return None
        if result is TickResult.SYMBOL_LIMIT:
            self._metrics.event(KIND, "symbol_limit")
            self._ratelog.warning(
                f"{KIND}:symbol_limit",
                "refused a tick of new symbol %s: the mark table holds RISK_MAX_SYMBOLS (%d)",
                symbol,
                self._engine.marks.max_symbols,
            )
            return None
        self._metrics.event(KIND, "suspect")
        self._ratelog.warning(
            f"{KIND}:suspect:{symbol}",
            "holding a suspect tick of %s at %s (mark %s) until confirmed",
            symbol,
            price,
            mark,
        )
        if result is not TickResult.SUSPECT_ALERT or mark is None:
            return None
        max_jump = self._engine.marks.max_jump
        return suspect_tick_alert(symbol, mark, price, max_jump, uuid.uuid4().hex, now_ms())
