"""The query endpoints of the ``risk-worker`` service: metrics, states and batch checks.

``risk.query.metrics``, ``risk.query.states`` and ``risk.check.batch`` are served on plain
queue subscriptions in queue group ``risk-workers`` next to ``check_order``, counted and listed
in ``$SRV.INFO`` when the services protocol is on (:mod:`~risk_worker.adapters.discovery`).
Every reply subject passes the :class:`~risk_worker.adapters.reply_guard.ReplyGuard` before
anything is decided, exactly as checks do. Handlers await nothing but their publishes: a batch
is decided in one synchronous call, and its reply waits with its reservations for their
announcement (:mod:`~risk_worker.adapters.reservation_outbox`). A batch of an account another
instance owns is forwarded to it on ``risk.check.owner.<worker_id>`` with the header
``Risk-Batch: 1`` (and the request's valid ``traceparent`` and ``Risk-Detail``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from risk_worker.adapters.discovery import Discovery
from risk_worker.adapters.membership import OWNER_SUBJECT_PREFIX
from risk_worker.adapters.query_handler import QueryAnswer, QueryHandler
from risk_worker.adapters.reply_guard import ReplyGuard
from risk_worker.adapters.reservation_outbox import ReservationOutbox
from risk_worker.wire.detail import forward_headers, header_detail
from risk_worker.wire.trace import header_traceparent

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
    msg: Msg,
    outbox: ReservationOutbox,
    more: int,
    traceparent: str | None = None,
    detail: str | None = None,
) -> str | None:
    """Forward (a batch of another owner's account, with its ``traceparent`` and
    ``Risk-Detail``), or reply (with
    the answer's reservations announced first; ``more``: requests queued behind this one).

    Returns:
        The error text of an error reply sent, else None.
    """
    if answer.forward_to is not None:  # the owner answers the client directly
        await nc.publish(
            OWNER_SUBJECT_PREFIX + answer.forward_to,
            msg.data,
            reply=msg.reply,
            headers=forward_headers(traceparent, detail, {BATCH_HEADER: "1"}),
        )
        return None
    sent = await outbox.send(answer.reservations, msg.reply, answer.payload, answer.headers, more)
    return answer.error if sent else None


async def subscribe_queries(
    nc: Client,
    queries: QueryHandler,
    queue: str,
    replies: ReplyGuard,
    outbox: ReservationOutbox,
    discovery: Discovery | None = None,
) -> list[Subscription]:
    """Queue subscriptions for the queries; with ``discovery``, each counted as an endpoint
    (after ``check_order``)."""
    subs: list[Subscription] = []
    for name, subject, description in ENDPOINTS:
        answer_of = answers(queries)[subject]
        mine: list[Subscription] = []

        async def on_msg(
            msg: Msg,
            subject: str = subject,
            answer_of: Answer = answer_of,
            mine: list[Subscription] = mine,
        ) -> str | None:
            more = mine[0].pending_msgs if mine else 0
            try:
                if not replies.accepts(msg.reply, subject):
                    return None
                traceparent = header_traceparent(msg.headers)
                detail = header_detail(msg.headers)
                answer = answer_of(msg.data, traceparent, detail)
                return await send(nc, answer, msg, outbox, more, traceparent, detail)
            finally:
                if outbox.held:
                    await outbox.settle(more)

        cb: Callable[[Msg], Awaitable[object]] = on_msg
        if discovery is not None:
            endpoint = discovery.endpoint(name, subject, queue, description + " (subjects.md)")
            cb = discovery.counted(endpoint, on_msg)
        mine.append(await nc.subscribe(subject, queue=queue, cb=cb))  # type: ignore[arg-type]
        subs += mine
    return subs


async def answer_forwarded_batch(
    queries: QueryHandler, msg: Msg, replies: ReplyGuard, outbox: ReservationOutbox, more: int
) -> None:
    """A batch forwarded to this instance as the account's owner: decide it here (``more``:
    requests queued behind it on ``risk.check.owner.<worker_id>``)."""
    try:
        if not replies.accepts(msg.reply, msg.subject):
            return
        traceparent = header_traceparent(msg.headers)
        detail = header_detail(msg.headers)
        answer = queries.batch(msg.data, False, traceparent, detail)
        await outbox.send(answer.reservations, msg.reply, answer.payload, answer.headers, more)
    finally:
        if outbox.held:
            await outbox.settle(more)
