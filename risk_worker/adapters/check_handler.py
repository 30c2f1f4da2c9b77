"""Answering ``risk.check.order``: request bytes in, reply bytes out, nothing awaited.

Transport-free so the same code serves a plain queue subscription and the NATS services
protocol endpoint. Parse → decide (the decision core) → record violations (queued, never
awaited) → encode. Invalid requests get an ``invalid_request`` reply with the services
protocol's error headers; any exception becomes an ``internal_error`` denial.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec

from risk_worker.adapters.ratelog import RateLimitedLog
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Decision, Order, deny
from risk_worker.domain.types import DenyReason
from risk_worker.errors import InvalidMessageError
from risk_worker.wire import check_request, inbound
from risk_worker.wire.audit import (
    RiskEventSink,
    ViolationRecord,
    duplicate_order_record,
    restricted_record,
    violation_record,
)
from risk_worker.wire.detail import FULL, header_full
from risk_worker.wire.outbound import reply_msg
from risk_worker.wire.trace import TRACEPARENT, log_fields

log = logging.getLogger("risk_worker.checks")

ERROR_CODE = "Nats-Service-Error-Code"
ERROR_TEXT = "Nats-Service-Error"


def now_ms() -> int:
    """Wall clock, ms since the Unix epoch."""
    return time.time_ns() // 1_000_000


class CheckAnswer(msgspec.Struct, frozen=True, gc=False):
    """A reply to send: JSON payload, headers (error replies and a traced check's
    ``traceparent`` only), the decision, for the
    services protocol's error count the error text (None when not an error), and the
    reservation to announce on ``risk.reservations`` (None when nothing was reserved).

    A frozen Struct rather than a NamedTuple: it is built once per check, three times faster.
    """

    payload: bytes
    headers: dict[str, str] | None
    decision: Decision | None
    error: str | None
    reservation: bytes | None = None
    forward_to: str | None = None
    """Another instance owns the account: forward the request there, answer nothing."""


class CheckHandler:
    """Turns check requests into replies.

    Args:
        engine: the decision core.
        confirmed: whether the trading state is confirmed now.
        worker_id: echoed in replies.
        max_request_bytes: larger requests are invalid.
        sink: receives a record of each violation that denied an order.
        on_checked: called with (decision, seconds spent) after each answer (metrics).
        owner_of: which instance decides an account (``worker_id`` for this one).
        on_forwarded: called for each check or batch forwarded to another owner (metrics).
    """

    def __init__(
        self,
        engine: RiskEngine,
        confirmed: Callable[[], bool],
        worker_id: str,
        max_request_bytes: int,
        sink: RiskEventSink,
        on_checked: Callable[[Decision, float], None] | None = None,
        owner_of: Callable[[str], str] | None = None,
        on_forwarded: Callable[[], None] | None = None,
    ) -> None:
        self._owner_of = owner_of
        self._on_forwarded = on_forwarded
        self._engine = engine
        self._confirmed = confirmed
        self._worker_id = worker_id
        self._max_bytes = max_request_bytes
        self._sink = sink
        self._on_checked = on_checked
        self._encoder = msgspec.json.Encoder()
        self._ratelog = RateLimitedLog(log)

    def answer(
        self,
        data: bytes,
        may_forward: bool = True,
        traceparent: str | None = None,
        detail: str | None = None,
    ) -> CheckAnswer:
        """The reply to one request, or where to forward it (never raises).

        ``may_forward`` is False for a request that was already forwarded to this instance.
        ``traceparent``: the request's valid W3C ``traceparent`` (``wire.trace``), echoed in
        the reply headers, the check's log lines and its violation records; None for most.
        ``detail``: the request's ``Risk-Detail`` header as received (``wire.detail``); an
        approval carries its post-trade metrics only when it or the body asks ``full``.
        """
        started = time.perf_counter_ns()
        now = now_ms()
        headers: dict[str, str] | None = None
        error: str | None = None
        full = False
        try:
            request = check_request.decode_check(data, self._max_bytes)
            order = check_request.check_order(request)
            full = request.detail == FULL or (detail is not None and header_full(detail))
        except InvalidMessageError as exc:
            order_id, account_id = inbound.request_ids(data[: self._max_bytes])
            decision = deny(DenyReason.INVALID_REQUEST, f"invalid request: {exc}")
            error = str(exc)[:512]
            headers = {ERROR_CODE: "400", ERROR_TEXT: error}
            self._ratelog.warning(
                "invalid", "invalid check request: %s", exc, extra=log_fields(traceparent)
            )
        else:
            order_id, account_id = order.order_id, order.account_id
            if may_forward:
                owner = self.forward_target(account_id)
                if owner is not None:
                    self.forwarded()
                    return CheckAnswer(b"", None, None, None, forward_to=owner)
            decision = self._decide(order, now, traceparent, full)
            if decision.reason is not None:
                self.record_denial(order, decision, now, traceparent)
        try:
            elapsed_us = (time.perf_counter_ns() - started) // 1000
            reply = reply_msg(
                order_id, account_id, decision, now, elapsed_us, self._worker_id, full
            )
            payload = self._encoder.encode(reply)
        except Exception:
            log.exception(
                "encoding the reply to order %s failed",
                order_id,
                extra=log_fields(traceparent),
            )
            decision = deny(DenyReason.INTERNAL_ERROR, "internal error while encoding the reply")
            payload = self._encoder.encode(
                reply_msg(order_id, account_id, decision, now, 0, self._worker_id)
            )
        reason = decision.reason
        if reason is None:  # approved: nothing to log
            pass
        elif reason is DenyReason.INTERNAL_ERROR:
            error = decision.message
        elif reason is not DenyReason.INVALID_REQUEST:
            log.info(
                "denied order %s of %s: %s (%s)",
                order_id,
                account_id,
                reason.value,
                decision.message,
                extra={
                    "order_id": order_id,
                    "account_id": account_id,
                    "reason": reason.value,
                    **log_fields(traceparent),
                },
            )
        reservation = None
        r = decision.reservation
        if r is not None and account_id is not None:
            reservation = self._encoder.encode(
                inbound.reservation_msg(self._worker_id, account_id, r)
            )
        if self._on_checked is not None:
            self._on_checked(decision, (time.perf_counter_ns() - started) / 1e9)
        if traceparent is not None:
            headers = {**(headers or {}), TRACEPARENT: traceparent}
        return CheckAnswer(payload, headers, decision, error, reservation)

    @property
    def worker_id(self) -> str:
        """This instance's id (echoed in replies)."""
        return self._worker_id

    @property
    def max_request_bytes(self) -> int:
        """``RISK_MAX_REQUEST_BYTES``: larger requests are invalid."""
        return self._max_bytes

    def forward_target(self, account_id: str) -> str | None:
        """The instance that decides ``account_id`` when it is another one, else None."""
        if self._owner_of is None:
            return None
        owner = self._owner_of(account_id)
        return None if owner == self._worker_id else owner

    def forwarded(self) -> None:
        """Count one check or batch forwarded to its account's owner (``on_forwarded``)."""
        if self._on_forwarded is not None:
            self._on_forwarded()

    def checked(self, decision: Decision, seconds: float) -> None:
        """Count one decided order (its reason, the time spent) like a single check."""
        if self._on_checked is not None:
            self._on_checked(decision, seconds)

    def record_denial(
        self, order: Order, decision: Decision, now: int, traceparent: str | None = None
    ) -> None:
        """Record what denied ``order`` to the audit sink (queued, never awaited): each
        violation, a restricted symbol or a duplicate order id; nothing for other reasons.
        ``traceparent``: the request's, kept in each record."""
        reason = decision.reason
        if reason is None:
            return
        order_id, account_id = order.order_id, order.account_id
        for violation in decision.violations:
            self._sink.record(
                violation_record(
                    violation,
                    account_id,
                    now,
                    "pre_trade",
                    "denied",
                    order_id,
                    reason,
                    order.strategy_id,
                    traceparent,
                )
            )
        if reason is DenyReason.RESTRICTED_SYMBOL:
            self._record_restricted(order, now, traceparent)
        elif reason is DenyReason.DUPLICATE_ORDER_ID:
            record = duplicate_order_record(account_id, now, order_id, order.symbol)
            self._sink.record(_traced(record, traceparent))

    def _record_restricted(self, order: Order, now: int, traceparent: str | None) -> None:
        """Record a ``restricted_symbol`` denial as a pre-trade violation (off the hot path:
        only denials get here)."""
        found = self._engine.states.restricted.find(order.account_id, order.symbol)
        if found is not None:
            record = restricted_record(
                order.account_id, order.order_id, order.symbol, found[0], now
            )
            self._sink.record(_traced(record, traceparent))

    def _decide(
        self, order: Order, now: int, traceparent: str | None, full: bool = True
    ) -> Decision:
        """The engine's decision (``full``: the reply carries every policy's utilization);
        an exception is logged and denied ``internal_error``."""
        try:
            return self._engine.check(order, now, self._confirmed(), full)
        except Exception:
            log.exception(
                "check of order %s failed; denying", order.order_id, extra=log_fields(traceparent)
            )
            return deny(DenyReason.INTERNAL_ERROR, "internal error in the decision; denied")


def _traced(record: ViolationRecord, traceparent: str | None) -> ViolationRecord:
    """``record`` with the check's ``traceparent`` (the same record without one)."""
    return (
        record if traceparent is None else msgspec.structs.replace(record, traceparent=traceparent)
    )
