"""The client's types and the fail-closed decoding of replies (pure: no I/O, no clock).

A :class:`Decision` is approved only when a reply decoded as a ``CheckReplyMsg`` (subjects.md
§3.6) says ``"approved": true``, carries no ``rejection_reason``, echoes the order's
``order_id`` and has no service-error header. Anything else is denied: by the worker's reason,
by the service error's, or by a client-side reason of :data:`CLIENT_REASONS`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import msgspec

from risk_worker.domain.types import RiskLevel
from risk_worker.wire.outbound import CheckReplyMsg, RiskMetricsMsg, ViolationMsg
from risk_worker.wire.queries import BatchReplyMsg, QueryErrorMsg
from risk_worker.wire.trace import TRACEPARENT, parse_traceparent

NO_REPLY = "no_reply"
"""The request was not answered: the connection closed or was lost, or could not send."""
NO_RESPONDERS = "no_responders"
"""No worker subscribes to the subject (none running, none subscribed yet, all draining)."""
TIMEOUT = "timeout"
"""No reply within the timeout."""
BAD_REPLY = "bad_reply"
"""A reply that does not decode as the contract's message, or contradicts itself (approved
with a rejection reason, another order's id, too few decisions in a batch)."""
SERVICE_ERROR = "service_error"
"""A service-error reply whose body does not say which error (its code is in ``error_code``)."""
CLIENT_REASONS = frozenset({NO_REPLY, NO_RESPONDERS, TIMEOUT, BAD_REPLY, SERVICE_ERROR})
"""``rejection_reason`` values the client makes up; the worker's are in subjects.md §4."""
ERROR_CODE = "Nats-Service-Error-Code"
ERROR_TEXT = "Nats-Service-Error"


def new_order_id() -> str:
    """A random order id (32 hex digits) for an order sent without one."""
    return uuid.uuid4().hex


class CheckOrder(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A ``risk.check.order`` request (subjects.md §3.5): quantity in base units (> 0), price
    in quote per base unit (None: a market order), ``side`` ``BUY`` or ``SELL``."""

    account_id: str
    symbol: str
    side: str
    quantity: float
    price: float | None = None
    order_id: str = msgspec.field(default_factory=new_order_id)
    order_type: str | None = None
    strategy_id: str | None = None
    reduce_only: bool = False
    dry_run: bool = False
    timestamp: int = 0


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """One order's decision: the reply's fields (subjects.md §3.6), and the client's.

    Attributes:
        approved: send the order only when True.
        rejection_reason: the worker's reason code (§4), the service error's ``error``, or a
            client-side one (:data:`CLIENT_REASONS`); None when approved.
        reason: a sentence saying why.
        risk_level: the worker's; None when the client decided.
        violations, warnings: the policies violated (hard, emergency) and warned (soft).
        post_trade_metrics: the account after the order as if filled; None when not assessed,
            and on an approval unless asked for (``detail="full"``, subjects.md §5.2).
        processing_time_us: the worker's time on the check (µs); None when the client decided.
        worker_id: the instance that decided; None when the client decided.
        duplicate: an idempotent retry of a live order (approved again, reserved once).
        client_side: True when the client denied (no reply, no responders, timeout, bad reply).
        error_code: the reply's ``Nats-Service-Error-Code`` (``"400"`` …), else None.
        traceparent: the ``traceparent`` the worker echoed, else None.
    """

    approved: bool
    order_id: str | None
    account_id: str | None = None
    rejection_reason: str | None = None
    reason: str = ""
    risk_level: RiskLevel | None = None
    violations: tuple[ViolationMsg, ...] = ()
    warnings: tuple[ViolationMsg, ...] = ()
    post_trade_metrics: RiskMetricsMsg | None = None
    processing_time_us: int | None = None
    worker_id: str | None = None
    duplicate: bool = False
    client_side: bool = False
    error_code: str | None = None
    traceparent: str | None = None


class BatchDecision(msgspec.Struct, frozen=True, kw_only=True):
    """A ``risk.check.batch``'s outcome: one :class:`Decision` per order, in order.

    ``approved`` only when the worker said so and every decision is approved. When the batch
    was not decided (no reply, a service error such as 400 ``invalid_request``, a bad reply)
    every decision is denied with the batch's ``rejection_reason``; ``field`` names the
    invalid field (``orders[<i>].<field>``) of a 400.
    """

    approved: bool
    decisions: tuple[Decision, ...]
    worker_id: str | None = None
    rejection_reason: str | None = None
    reason: str = ""
    error_code: str | None = None
    field: str | None = None
    client_side: bool = False
    traceparent: str | None = None


OrderIds = Sequence[tuple[str | None, str | None]]
"""(order_id, account_id) of each order sent, in order."""


def denied(
    order_id: str | None,
    account_id: str | None,
    reason: str,
    message: str,
    error_code: str | None = None,
    traceparent: str | None = None,
) -> Decision:
    """A denial the client decided (``client_side``), with reason code ``reason``."""
    return Decision(
        approved=False,
        order_id=order_id,
        account_id=account_id,
        rejection_reason=reason,
        reason=message,
        client_side=error_code is None,
        error_code=error_code,
        traceparent=traceparent,
    )


def denied_batch(
    ids: OrderIds,
    reason: str,
    message: str,
    error_code: str | None = None,
    field: str | None = None,
    traceparent: str | None = None,
) -> BatchDecision:
    """A batch none of whose orders was decided: each denied with ``reason``."""
    decisions = tuple(denied(o, a, reason, message, error_code, traceparent) for o, a in ids)
    return BatchDecision(
        approved=False,
        decisions=decisions,
        rejection_reason=reason,
        reason=message,
        error_code=error_code,
        field=field,
        client_side=error_code is None,
        traceparent=traceparent,
    )


_CHECK = msgspec.json.Decoder(CheckReplyMsg)
_BATCH = msgspec.json.Decoder(BatchReplyMsg)
_ERROR = msgspec.json.Decoder(QueryErrorMsg)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    return None if not headers else headers.get(name)


def from_reply(
    reply: CheckReplyMsg,
    order_id: str | None,
    error_code: str | None = None,
    traceparent: str | None = None,
) -> Decision:
    """The decision a decoded reply to order ``order_id`` gives (fail closed).

    A service-error code denies whatever the body says; an approval that names a rejection
    reason or another order, or a denial without a reason, is ``bad_reply``.
    """
    approved = reply.approved and error_code is None
    if approved and (reply.rejection_reason is not None or reply.order_id != order_id):
        why = f"an approval of order {reply.order_id!r} with reason {reply.rejection_reason!r}"
        return denied(order_id, reply.account_id, BAD_REPLY, why, None, traceparent)
    rejection = None if approved else reply.rejection_reason
    if not approved and rejection is None:
        rejection = SERVICE_ERROR if error_code is not None else BAD_REPLY
    return Decision(
        approved=approved,
        order_id=reply.order_id,
        account_id=reply.account_id,
        rejection_reason=rejection,
        reason=reply.reason,
        risk_level=reply.risk_level,
        violations=tuple(reply.violations),
        warnings=tuple(reply.warnings),
        post_trade_metrics=reply.post_trade_metrics,
        processing_time_us=reply.processing_time_us,
        worker_id=reply.worker_id,
        duplicate=reply.duplicate,
        client_side=rejection == BAD_REPLY,
        error_code=error_code,
        traceparent=traceparent,
    )


def decode_check(
    data: bytes,
    headers: Mapping[str, str] | None,
    order_id: str | None,
    account_id: str | None,
) -> Decision:
    """The decision of a ``risk.check.order`` reply (never raises)."""
    code = _header(headers, ERROR_CODE)
    traceparent = parse_traceparent(_header(headers, TRACEPARENT))
    try:
        reply = _CHECK.decode(data)
    except (msgspec.DecodeError, ValueError) as exc:
        if code is not None:
            text = _header(headers, ERROR_TEXT) or ""
            why = f"service error {code}: {text}"
            return denied(order_id, account_id, SERVICE_ERROR, why, code, traceparent)
        why = f"undecodable reply: {exc}"
        return denied(order_id, account_id, BAD_REPLY, why, None, traceparent)
    return from_reply(reply, order_id, code, traceparent)


def decode_batch(data: bytes, headers: Mapping[str, str] | None, ids: OrderIds) -> BatchDecision:
    """The outcome of a ``risk.check.batch`` reply to the orders ``ids`` (never raises)."""
    code = _header(headers, ERROR_CODE)
    traceparent = parse_traceparent(_header(headers, TRACEPARENT))
    if code is not None:
        try:
            error = _ERROR.decode(data)
        except (msgspec.DecodeError, ValueError):
            why = f"service error {code}: {_header(headers, ERROR_TEXT) or ''}"
            return denied_batch(ids, SERVICE_ERROR, why, code, None, traceparent)
        return denied_batch(ids, error.error, error.message, code, error.field, traceparent)
    try:
        reply = _BATCH.decode(data)
    except (msgspec.DecodeError, ValueError) as exc:
        why = f"undecodable batch reply: {exc}"
        return denied_batch(ids, BAD_REPLY, why, None, None, traceparent)
    if len(reply.decisions) != len(ids):
        why = f"{len(reply.decisions)} decisions for {len(ids)} orders"
        return denied_batch(ids, BAD_REPLY, why, None, None, traceparent)
    decisions = tuple(
        from_reply(r, order_id, None, traceparent)
        for r, (order_id, _account) in zip(reply.decisions, ids, strict=True)
    )
    approved = reply.approved and all(d.approved for d in decisions)
    return BatchDecision(
        approved=approved,
        decisions=decisions,
        worker_id=reply.worker_id,
        traceparent=traceparent,
    )
