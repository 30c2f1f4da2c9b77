"""The worker's NATS edge: event subscriptions, the check responder, outbound publishing.

Events go to every instance (no queue group) so each holds the whole book; checks are spread
over the ``risk-workers`` queue group. The check handler awaits nothing but its reply.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from risk_worker import wire
from risk_worker.adapters.ratelog import RateLimitedLog
from risk_worker.adapters.state_watcher import StateWatcher
from risk_worker.domain.decision import Decision, Order, deny
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.types import ApplyResult, DenyReason
from risk_worker.errors import InvalidMessageError
from risk_worker.sinks import RiskEventSink, violation_record
from risk_worker.wire_out import reply_msg

log = logging.getLogger(__name__)

CHECK_SUBJECT = "risk.check.order"
CHECK_QUEUE = "risk-workers"
POSITIONS_SUBJECT = "positions.update"
FILLS_SUBJECT = "fills.confirmed"
TICKS_SUBJECT = "market.tick.*"
PNL_SUBJECT = "pnl.update"


def now_ms() -> int:
    """Wall clock, ms since the Unix epoch."""
    return time.time_ns() // 1_000_000


class WorkerService:
    """Subscribes the engine to its inputs and answers checks.

    Args:
        nc: a connected client.
        engine: the decision core.
        watcher: tells whether the trading state is confirmed.
        worker_id: this instance's id, echoed in replies.
        max_request_bytes: larger check requests are invalid.
        sink: receives a record of each policy violation that denied an order.

    Attributes:
        counters: event and check counts by (kind, outcome) — exported as metrics later.
    """

    def __init__(
        self,
        nc: Client,
        engine: RiskEngine,
        watcher: StateWatcher,
        worker_id: str,
        max_request_bytes: int,
        sink: RiskEventSink,
    ) -> None:
        self._nc = nc
        self._sink = sink
        self._engine = engine
        self._watcher = watcher
        self._worker_id = worker_id
        self._max_bytes = max_request_bytes
        self._encoder = msgspec.json.Encoder()
        self._subs: list[Subscription] = []
        self._ratelog = RateLimitedLog(log)
        self.counters: collections.Counter[tuple[str, str]] = collections.Counter()

    async def start(self) -> None:
        """Subscribe to every input, then flush so an immediate request finds a responder."""
        events: list[tuple[str, Callable[[Msg], Awaitable[None]]]] = [
            (POSITIONS_SUBJECT, self._on_position),
            (FILLS_SUBJECT, self._on_fill),
            (PNL_SUBJECT, self._on_pnl),
            (TICKS_SUBJECT, self._on_tick),
        ]
        for subject, cb in events:
            self._subs.append(
                await self._nc.subscribe(
                    subject, cb=cb, pending_msgs_limit=-1, pending_bytes_limit=-1
                )
            )
        self._subs.append(
            await self._nc.subscribe(CHECK_SUBJECT, queue=CHECK_QUEUE, cb=self._on_check)
        )
        await self._nc.flush()

    # -- events -------------------------------------------------------------------------------

    def _invalid(self, kind: str, exc: InvalidMessageError) -> None:
        self.counters[(f"invalid:{kind}", exc.reason)] += 1
        self._ratelog.warning(f"{kind}:{exc.reason}", "dropped invalid %s event: %s", kind, exc)

    def _applied(self, kind: str, result: ApplyResult) -> None:
        self.counters[(kind, result.value)] += 1

    async def _on_position(self, msg: Msg) -> None:
        try:
            event = wire.parse_position(msg.data)
        except InvalidMessageError as exc:
            self._invalid(POSITIONS_SUBJECT, exc)
            return
        self._applied(POSITIONS_SUBJECT, self._engine.apply_position(event))

    async def _on_fill(self, msg: Msg) -> None:
        try:
            event = wire.parse_fill(msg.data)
        except InvalidMessageError as exc:
            self._invalid(FILLS_SUBJECT, exc)
            return
        self._applied(FILLS_SUBJECT, self._engine.apply_fill(event))

    async def _on_pnl(self, msg: Msg) -> None:
        try:
            event = wire.parse_pnl(msg.data)
        except InvalidMessageError as exc:
            self._invalid(PNL_SUBJECT, exc)
            return
        self._applied(PNL_SUBJECT, self._engine.apply_pnl(event))

    async def _on_tick(self, msg: Msg) -> None:
        try:
            symbol, price, timestamp = wire.parse_tick(msg.data, msg.subject)
        except InvalidMessageError as exc:
            self._invalid("market.tick", exc)
            return
        now = now_ms()
        self._engine.set_mark(symbol, price, now if timestamp is None else timestamp, now)
        self.counters[("market.tick", "applied")] += 1

    # -- checks -------------------------------------------------------------------------------

    async def _on_check(self, msg: Msg) -> None:
        started = time.perf_counter_ns()
        if not msg.reply:
            self.counters[("check", "no_reply_subject")] += 1
            return
        now = now_ms()
        order_id: str | None = None
        account_id: str | None = None
        headers: dict[str, str] | None = None
        try:
            order = wire.parse_check(msg.data, self._max_bytes)
        except InvalidMessageError as exc:
            order_id, account_id = wire.request_ids(msg.data[: self._max_bytes])
            decision = deny(DenyReason.INVALID_REQUEST, f"invalid request: {exc}")
            headers = {"Nats-Service-Error-Code": "400", "Nats-Service-Error": str(exc)[:512]}
            self._ratelog.warning("check:invalid", "invalid check request: %s", exc)
        else:
            order_id, account_id = order.order_id, order.account_id
            decision = self._decide(order, now)
            for violation in decision.violations:
                self._sink.record(
                    violation_record(violation, account_id, now, "pre_trade", "denied", order_id)
                )
        try:
            elapsed_us = (time.perf_counter_ns() - started) // 1000
            reply = reply_msg(order_id, account_id, decision, now, elapsed_us, self._worker_id)
            payload = self._encoder.encode(reply)
        except Exception:
            log.exception("encoding the reply to order %s failed", order_id)
            decision = deny(DenyReason.INTERNAL_ERROR, "internal error while encoding the reply")
            payload = self._encoder.encode(
                reply_msg(order_id, account_id, decision, now, 0, self._worker_id)
            )
        self.counters[("check", decision.reason.value if decision.reason else "approved")] += 1
        if decision.reason is not None and decision.reason is not DenyReason.INVALID_REQUEST:
            log.info(
                "denied order %s of %s: %s (%s)",
                order_id,
                account_id,
                decision.reason.value,
                decision.message,
            )
        await self._nc.publish(msg.reply, payload, headers=headers)

    def _decide(self, order: Order, now: int) -> Decision:
        try:
            return self._engine.check(order, now, self._watcher.confirmed())
        except Exception:
            log.exception("check of order %s failed; denying", order.order_id)
            return deny(DenyReason.INTERNAL_ERROR, "internal error in the decision; denied")

    # -- outbound -----------------------------------------------------------------------------

    async def publish(self, subject: str, message: msgspec.Struct) -> None:
        """Publish one outbound message as JSON."""
        await self._nc.publish(subject, self._encoder.encode(message))

    async def stop(self) -> None:
        """Drain every subscription: no new messages, the ones received are still handled
        (in-flight checks are answered, their audit records queued)."""
        drains = (sub.drain() for sub in self._subs)  # type: ignore[no-untyped-call]  # nats-py
        results = await asyncio.gather(*drains, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):  # connection already closed or draining
                log.debug("draining a subscription failed: %r", result)
        self._subs.clear()
