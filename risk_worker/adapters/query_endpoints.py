"""The query endpoints of the ``risk-worker`` service: metrics, states and batch checks.

``risk.query.metrics``, ``risk.query.states`` and ``risk.check.batch`` are served in queue
group ``risk-workers`` next to ``check_order`` (``$SRV.INFO`` lists them), or on plain queue
subscriptions when ``RISK_SERVICES_PROTOCOL=false``. Every reply subject passes the
:class:`~risk_worker.adapters.reply_guard.ReplyGuard` before anything is decided, exactly as
checks do. Handlers await nothing but their publishes: a batch is decided in one synchronous
call. A batch of an account another instance owns is forwarded to it on
``risk.check.owner.<worker_id>`` with the header ``Risk-Batch: 1`` (and the request's valid
``traceparent`` and ``Risk-Detail``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.micro.request import Request
from nats.micro.service import Service

from risk_worker.adapters.membership import OWNER_SUBJECT_PREFIX
from risk_worker.adapters.micro_service import RESERVATIONS_SUBJECT, count_error
from risk_worker.adapters.query_handler import QueryAnswer, QueryHandler
from risk_worker.adapters.reply_guard import ReplyGuard
from risk_worker.wire.detail import forward_headers, header_detail
from risk_worker.wire.trace import header_traceparent

log = logging.getLogger(__name__)

QUERY_METRICS_SUBJECT = "risk.query.metrics"
QUERY_STATES_SUBJECT = "risk.query.states"
BATCH_SUBJECT = "risk.check.batch"
BATCH_HEADER = "Risk-Batch"
"""Header marking a batch forwarded to the owner on ``risk.check.owner.<worker_id>``."""

Answer = Callable[[bytes, str | None, str | None], QueryAnswer]
"""(request bytes, the request's valid ``traceparent``, its ``Risk-Detail`` header; None when
absent) → the answer."""
ENDPOINTS: tuple[tuple[str, str, str], ...] = (
    ("check_batch", BATCH_SUBJECT, "request: BatchRequestMsg; reply: BatchReplyMsg"),
    ("query_metrics", QUERY_METRICS_SUBJECT, "request: MetricsQueryMsg; reply: RiskMetricsMsg"),
    ("query_states", QUERY_STATES_SUBJECT, "request: {}; reply: StatesReplyMsg"),
)
"""(endpoint name, subject, description) of each query endpoint (subjects.md §2, §3.15-18)."""


def answers(queries: QueryHandler) -> dict[str, Answer]:
    """subject → the handler's answer to a request on it."""
    return {
        BATCH_SUBJECT: lambda data, tp, detail: queries.batch(data, True, tp, detail),
        QUERY_METRICS_SUBJECT: lambda data, _tp, _detail: queries.metrics(data),
        QUERY_STATES_SUBJECT: lambda _data, _tp, _detail: queries.states(),
    }


async def send(
    nc: Client,
    answer: QueryAnswer,
    data: bytes,
    reply: str,
    respond: Callable[[bytes, dict[str, str] | None], Awaitable[None]],
    traceparent: str | None = None,
    detail: str | None = None,
) -> bool:
    """Forward (a batch of another owner's account, with its ``traceparent`` and
    ``Risk-Detail``), or announce the reservations and reply.

    Returns:
        False when the reply could not be sent (the connection closed meanwhile).
    """
    if answer.forward_to is not None:  # the owner answers the client directly
        await nc.publish(
            OWNER_SUBJECT_PREFIX + answer.forward_to,
            data,
            reply=reply,
            headers=forward_headers(traceparent, detail, {BATCH_HEADER: "1"}),
        )
        return True
    for reservation in answer.reservations:  # before the reply, as for single checks
        await nc.publish(RESERVATIONS_SUBJECT, reservation)
    try:
        await respond(answer.payload, answer.headers)
    except nats.errors.Error as exc:
        log.debug("answering a query failed: %r", exc)
        return False
    return True


async def add_query_endpoints(
    service: Service, nc: Client, queries: QueryHandler, queue: str, replies: ReplyGuard
) -> None:
    """Add the query endpoints to the running service (after ``check_order``)."""
    table = answers(queries)
    for name, subject, description in ENDPOINTS:
        answer_of = table[subject]
        endpoint: list[Any] = []

        async def handle(
            request: Request,
            subject: str = subject,
            answer_of: Answer = answer_of,
            endpoint: list[Any] = endpoint,
        ) -> None:
            reply = request._msg.reply  # nats.micro has no public accessor for it
            if not replies.accepts(reply, subject):
                return
            traceparent = header_traceparent(request.headers)
            detail = header_detail(request.headers)
            answer = answer_of(request.data, traceparent, detail)

            async def respond(payload: bytes, headers: dict[str, str] | None) -> None:
                await request.respond(payload, headers=headers)

            sent = await send(nc, answer, request.data, reply, respond, traceparent, detail)
            if sent and answer.error is not None and endpoint:
                count_error(endpoint[0], answer.error)

        await service.add_endpoint(
            name=name,
            subject=subject,
            queue_group=queue,
            handler=handle,
            metadata={"description": description + " (subjects.md)"},
        )
        endpoint.extend(getattr(service, "_endpoints", [])[-1:])


async def subscribe_queries(
    nc: Client, queries: QueryHandler, queue: str, replies: ReplyGuard
) -> list[Subscription]:
    """Plain queue subscriptions for the queries (``RISK_SERVICES_PROTOCOL=false``)."""
    subs = []
    for subject, answer_of in answers(queries).items():

        async def on_msg(msg: Msg, subject: str = subject, answer_of: Answer = answer_of) -> None:
            if not replies.accepts(msg.reply, subject):
                return

            async def respond(payload: bytes, headers: dict[str, str] | None) -> None:
                await nc.publish(msg.reply, payload, headers=headers)

            traceparent = header_traceparent(msg.headers)
            detail = header_detail(msg.headers)
            answer = answer_of(msg.data, traceparent, detail)
            await send(nc, answer, msg.data, msg.reply, respond, traceparent, detail)

        subs.append(await nc.subscribe(subject, queue=queue, cb=on_msg))
    return subs


async def answer_forwarded_batch(
    nc: Client, queries: QueryHandler, msg: Msg, replies: ReplyGuard
) -> None:
    """A batch forwarded to this instance as the account's owner: decide it here."""
    if not replies.accepts(msg.reply, msg.subject):
        return

    async def respond(payload: bytes, headers: dict[str, str] | None) -> None:
        await nc.publish(msg.reply, payload, headers=headers)

    traceparent = header_traceparent(msg.headers)
    detail = header_detail(msg.headers)
    answer = queries.batch(msg.data, False, traceparent, detail)
    await send(nc, answer, msg.data, msg.reply, respond, traceparent, detail)
