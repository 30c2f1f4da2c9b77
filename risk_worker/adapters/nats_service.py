"""The worker's NATS edge: tick and reservation subscriptions, the check responder, outbound
publishing.

Ticks go to every instance (no queue group) so each holds every mark; they are taken in batches
by :class:`~risk_worker.adapters.tick_feed.TickFeed`. The account events come
through the ``RISK_INPUTS`` stream (:mod:`~risk_worker.adapters.input_stream`), also to every
instance. Checks are spread over the ``risk-workers`` queue group. The check handler awaits
nothing but its reply (a reply with reservations waits for their announcement:
:mod:`~risk_worker.adapters.reservation_outbox`). With the services protocol on, the request
subjects are counted and the worker answers ``$SRV.*`` (:mod:`~risk_worker.adapters.discovery`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from risk_worker.adapters.check_handler import CheckHandler, now_ms
from risk_worker.adapters.discovery import Discovery
from risk_worker.adapters.input_stream import FILLS_SUBJECT, PNL_SUBJECT, POSITIONS_SUBJECT
from risk_worker.adapters.membership import OWNER_SUBJECT_PREFIX
from risk_worker.adapters.query_endpoints import (
    BATCH_HEADER,
    answer_forwarded_batch,
    subscribe_queries,
)
from risk_worker.adapters.query_handler import QueryHandler
from risk_worker.adapters.ratelog import RateLimitedLog
from risk_worker.adapters.reply_guard import ReplyGuard
from risk_worker.adapters.reservation_outbox import RESERVATIONS_SUBJECT, ReservationOutbox
from risk_worker.adapters.state_watcher import StateWatcher
from risk_worker.adapters.tick_feed import SUSPECT_TICK_SUBJECT, TICKS_SUBJECT, TickFeed
from risk_worker.domain.engine import RiskEngine
from risk_worker.errors import InvalidMessageError
from risk_worker.wire import inbound
from risk_worker.wire.detail import forward_headers, header_detail
from risk_worker.wire.reservations import parse_reservations
from risk_worker.wire.trace import header_traceparent

log = logging.getLogger(__name__)


CHECK_SUBJECT = "risk.check.order"
CHECK_QUEUE = "risk-workers"
CHECK_ENDPOINT = "check_order"
CHECK_DESCRIPTION = "request: CheckRequestMsg; reply: CheckReplyMsg (subjects.md)"
DRAIN_TIMEOUT_S = 5.0
"""How long a stop waits for the subscriptions to hand over what they received."""

__all__ = [
    "CHECK_QUEUE",
    "CHECK_SUBJECT",
    "FILLS_SUBJECT",
    "PNL_SUBJECT",
    "POSITIONS_SUBJECT",
    "SUSPECT_TICK_SUBJECT",
    "TICKS_SUBJECT",
    "EventCounters",
    "WorkerService",
    "now_ms",
]


class EventCounters(Protocol):
    """What the NATS edge counts (the service's Prometheus metrics satisfy it)."""

    def event(self, kind: str, result: str = "applied") -> None:
        """Count one valid event of ``kind``; ``result`` applied or why it was not."""

    def events(self, kind: str, n: int) -> None:
        """Count ``n`` valid events of ``kind``, applied (the tick feed's batches)."""

    def invalid_event(self, kind: str, reason: str) -> None:
        """Count one dropped invalid event (``reason``: an ``InvalidMessageError`` code)."""

    def request_dropped(self, reason: str) -> None:
        """Count one request dropped unanswered (its reply subject was refused)."""

    def alert(self, level: str) -> None:
        """Count one published alert of ``level``."""


class WorkerService:
    """Subscribes the engine to its inputs and answers checks.

    Args:
        nc: a connected client.
        engine: the decision core.
        watcher: tells whether the trading state is confirmed.
        worker_id: this instance's id, echoed in replies.
        checks: answers check requests.
        metrics: counts events (valid, ignored, invalid).
        services_protocol: answer ``$SRV.*`` and count the requests of each endpoint (the
            requests are served on plain queue subscriptions either way).
        reply_prefixes: inbox prefixes answered besides ``_INBOX.`` (``RISK_REPLY_PREFIXES``);
            a request with any other reply subject is dropped (see ``reply_guard``).
        max_batch: ``RISK_MAX_BATCH``, the most orders of a ``risk.check.batch``.

    """

    def __init__(
        self,
        nc: Client,
        engine: RiskEngine,
        watcher: StateWatcher,
        worker_id: str,
        checks: CheckHandler,
        metrics: EventCounters,
        services_protocol: bool = True,
        reply_prefixes: tuple[str, ...] = (),
        max_batch: int = 100,
    ) -> None:
        self._metrics = metrics
        self._nc = nc
        self._engine = engine
        self._watcher = watcher
        self._worker_id = worker_id
        self.checks = checks
        self._services_protocol = services_protocol
        self.discovery: Discovery | None = None
        self.outbox = ReservationOutbox(nc, worker_id)
        self._encoder = msgspec.json.Encoder()
        self._subs: list[Subscription] = []
        self._endpoint_subs: list[Subscription] = []
        self._check_sub: Subscription | None = None
        self._owner_sub: Subscription | None = None
        self._ratelog = RateLimitedLog(log)
        self.replies = ReplyGuard(reply_prefixes, metrics.request_dropped)
        self.queries = QueryHandler(engine, watcher.confirmed, checks, max_batch)
        self.ticks = TickFeed(nc, engine, metrics, self.publish)

    async def start(self) -> None:
        """Subscribe to ticks, reservations and checks, then flush so an immediate request finds
        a responder (account events: :class:`~risk_worker.adapters.input_stream.InputStream`)."""
        await self.ticks.start()
        self._subs.append(
            await self._nc.subscribe(
                RESERVATIONS_SUBJECT,
                cb=self._on_reservation,
                pending_msgs_limit=-1,
                pending_bytes_limit=-1,
            )
        )
        self._owner_sub = await self._nc.subscribe(
            OWNER_SUBJECT_PREFIX + self._worker_id, cb=self._on_owned_check
        )
        self._subs.append(self._owner_sub)
        on_check = cast(Callable[[Msg], Awaitable[None]], self._answer)
        if self._services_protocol:
            self.discovery = Discovery(self._nc, self._worker_id, self.replies)
            # drained with the endpoints at stop, as nats.micro's Service.stop does: a stopping
            # instance no longer answers $SRV.PING, so discovery stops showing it
            self._endpoint_subs += await self.discovery.start()
            endpoint = self.discovery.endpoint(
                CHECK_ENDPOINT, CHECK_SUBJECT, CHECK_QUEUE, CHECK_DESCRIPTION
            )
            on_check = self.discovery.counted(endpoint, self._answer)
        self._check_sub = await self._nc.subscribe(CHECK_SUBJECT, queue=CHECK_QUEUE, cb=on_check)
        self._endpoint_subs.append(self._check_sub)
        self._endpoint_subs += await subscribe_queries(
            self._nc, self.queries, CHECK_QUEUE, self.replies, self.outbox, self.discovery
        )
        # Twice: nats-py 2.16's flush writes its PING straight to the socket, ahead of SUBs
        # still in its pending buffer, so one PONG can come back before the server has them
        # (a request sent then finds no responder). The second PING follows the SUBs.
        await self._nc.flush()
        await self._nc.flush()

    # -- events -------------------------------------------------------------------------------

    def _invalid(self, kind: str, exc: InvalidMessageError) -> None:
        self._metrics.invalid_event(kind, exc.reason)
        self._ratelog.warning(f"{kind}:{exc.reason}", "dropped invalid %s event: %s", kind, exc)

    # -- checks -------------------------------------------------------------------------------

    async def _on_owned_check(self, msg: Msg) -> None:
        """A check (or a batch) forwarded here because this instance owns the account."""
        if msg.headers and msg.headers.get(BATCH_HEADER):
            sub = self._owner_sub
            await answer_forwarded_batch(
                self.queries, msg, self.replies, self.outbox, 0 if sub is None else sub.pending_msgs
            )
            return
        await self._answer(msg, may_forward=False)

    async def _answer(self, msg: Msg, may_forward: bool = True) -> str | None:
        """Decide and reply, or forward to the owner; nothing for a refused reply subject
        (checked before deciding and before forwarding, so it reserves nothing).

        A reservation is announced before the reply: at once when the request came alone,
        else the reply is held and the run's reservations go out together when it ends
        (:mod:`~risk_worker.adapters.reservation_outbox`; inlined here, the path is hot).

        Args:
            msg: the request.
            may_forward: True on ``risk.check.order``, False for a check forwarded here.

        Returns:
            The error text of an error reply sent (an invalid request), else None.
        """
        sub = self._check_sub if may_forward else self._owner_sub
        outbox = self.outbox
        try:
            if not self.replies.accepts(msg.reply, msg.subject):
                return None
            traceparent = header_traceparent(msg.headers)  # None without headers: no work
            detail = header_detail(msg.headers)
            answer = self.checks.answer(msg.data, may_forward, traceparent, detail)
            if answer.forward_to is not None:  # the owner answers the client directly
                await self._nc.publish(
                    OWNER_SUBJECT_PREFIX + answer.forward_to,
                    msg.data,
                    reply=msg.reply,
                    headers=forward_headers(traceparent, detail),
                )
                return None
            if answer.reservation is not None:  # announced before the reply
                if outbox.held or (sub is not None and sub.pending_msgs):  # in a run: hold
                    reservation = (answer.reservation,)
                    if outbox.hold(reservation, msg.reply, answer.payload, answer.headers):
                        await outbox.flush()
                    return None
                try:
                    await self._nc.publish(
                        RESERVATIONS_SUBJECT, outbox.batch((answer.reservation,))
                    )
                except nats.errors.Error as exc:  # not announced: no approval goes out
                    log.warning("announcing a reservation failed, reply dropped: %r", exc)
                    return None
                outbox.messages += 1
            try:
                await self._nc.publish(msg.reply, answer.payload, headers=answer.headers)
            except nats.errors.Error as exc:  # the connection closed meanwhile
                log.debug("answering a check failed: %r", exc)
                return None
            return answer.error
        finally:  # the last request of a run announces the run's reservations
            if outbox.held:
                await outbox.settle(0 if sub is None else sub.pending_msgs)

    async def _on_reservation(self, msg: Msg) -> None:
        """Other instances reserved headroom (a batch, or one from an earlier version): count
        it here too. This instance's own messages are skipped unread."""
        try:
            reservations = parse_reservations(msg.data, own=self._worker_id)
        except InvalidMessageError as exc:
            self._invalid(RESERVATIONS_SUBJECT, exc)
            return
        for r in reservations:
            self._engine.apply_reservation(r.account_id, inbound.pending_order(r))

    # -- outbound -----------------------------------------------------------------------------

    async def publish(self, subject: str, message: msgspec.Struct) -> None:
        """Publish one outbound message as JSON."""
        await self._nc.publish(subject, self._encoder.encode(message))

    async def stop(self, timeout: float = DRAIN_TIMEOUT_S) -> None:  # noqa: ASYNC109
        """Drain every subscription: no new messages, the ones received are still handled
        (in-flight checks are answered, their audit records queued); the endpoints and the
        ``$SRV`` verbs first. Bounded: a drain that does not finish within ``timeout`` seconds
        is abandoned, so a stop always ends."""
        endpoints = (sub.drain() for sub in self._endpoint_subs)  # type: ignore[no-untyped-call]
        try:  # the requests first: their audit records are queued before the audit flush
            await asyncio.wait_for(asyncio.gather(*endpoints, return_exceptions=True), timeout)
        except TimeoutError:
            log.warning("draining the check endpoints took over %s s; abandoned", timeout)
        self._endpoint_subs.clear()
        drains: list[Awaitable[None]] = [self.ticks.stop()]
        drains += (sub.drain() for sub in self._subs)  # type: ignore[no-untyped-call]  # nats-py
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*drains, return_exceptions=True), timeout
            )
        except TimeoutError:
            log.warning("draining the subscriptions took over %s s; abandoned", timeout)
            results = []
        for result in results:
            if isinstance(result, Exception):  # connection already closed or draining
                log.debug("draining a subscription failed: %r", result)
        self._subs.clear()
        await self.outbox.flush()  # nothing should be held by now; if it is, send it
