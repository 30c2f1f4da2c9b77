"""The worker as a NATS service (``nats.micro``): discoverable by standard NATS tooling.

Registers service ``risk-worker`` (version from the package metadata, a description, the
worker id in the metadata) with one endpoint, ``check_order`` on ``risk.check.order`` in queue
group ``risk-workers``, so ``$SRV.PING``, ``$SRV.INFO`` and ``$SRV.STATS`` answer with request
and error counts and processing time.

nats.micro counts an error only when the handler raises, and then replies itself with an empty
body; our error replies carry a full reply body. So the handler replies and then counts the
error on the endpoint (``count_error``), the one place that reads nats.micro's private
counters (there is no public API for it).

Replies go only to accepted inboxes (:mod:`risk_worker.adapters.reply_guard`): the check
handler vets the reply subject before it decides, and nats.micro's own ``$SRV.PING``,
``$SRV.INFO`` and ``$SRV.STATS`` handlers (which answer with ``msg.respond`` to whatever reply
subject came) are wrapped on the Service instance before ``start()`` subscribes them, so a
``$SRV`` request with reply ``$KV...`` writes nothing either.
"""

from __future__ import annotations

import logging
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.micro.request import Request
from nats.micro.service import Service, ServiceConfig

from risk_worker import __version__
from risk_worker.adapters.check_handler import CheckHandler
from risk_worker.adapters.membership import OWNER_SUBJECT_PREFIX
from risk_worker.adapters.reply_guard import ReplyGuard
from risk_worker.wire.detail import forward_headers, header_detail
from risk_worker.wire.trace import header_traceparent

log = logging.getLogger(__name__)

SERVICE_NAME = "risk-worker"
ENDPOINT_NAME = "check_order"
RESERVATIONS_SUBJECT = "risk.reservations"
DESCRIPTION = "Pre-trade risk checks: may this order go? No reply or a timeout means DENIED."
VERB_HANDLERS = {
    "_handle_ping_request": "$SRV.PING",
    "_handle_info_request": "$SRV.INFO",
    "_handle_stats_request": "$SRV.STATS",
}
"""nats.micro's ``Service`` methods answering the ``$SRV`` verbs (private; looked up by
``Service.start()`` on the instance, so instance attributes override them)."""


def count_error(endpoint: Any, message: str) -> None:
    """Count a handled error in the endpoint's ``$SRV.STATS`` (nats.micro private fields)."""
    if hasattr(endpoint, "_num_errors"):
        endpoint._num_errors += 1
        endpoint._last_error = message


async def start_service(
    nc: Client,
    handler: CheckHandler,
    subject: str,
    queue: str,
    worker_id: str,
    replies: ReplyGuard,
) -> Service:
    """Register the service and its check endpoint; flushes so requests find it at once.

    Every request (a check or a ``$SRV`` verb) whose reply subject ``replies`` refuses is
    dropped unanswered before anything else happens.

    Raises:
        RuntimeError: this nats-py has no ``$SRV`` handler named in :data:`VERB_HANDLERS`
            (answering them unguarded is not an option).
    """
    config = ServiceConfig(
        name=SERVICE_NAME,
        version=__version__,
        description=DESCRIPTION,
        metadata={"worker_id": worker_id},
        queue_group=queue,
    )
    service = Service(nc, config)
    for name, verb in VERB_HANDLERS.items():
        if not callable(getattr(service, name, None)):
            raise RuntimeError(f"nats.micro Service has no {name}: cannot vet $SRV replies")
        setattr(service, name, replies.guard(getattr(service, name), verb))
    await service.start()
    endpoint: list[Any] = []

    async def check(request: Request) -> None:
        reply = request._msg.reply  # nats.micro has no public accessor for it
        if not replies.accepts(reply, subject):
            return
        traceparent = header_traceparent(request.headers)  # None without headers: no work
        detail = header_detail(request.headers)
        answer = handler.answer(request.data, traceparent=traceparent, detail=detail)
        if answer.forward_to is not None:  # the owner answers the client directly
            await nc.publish(
                OWNER_SUBJECT_PREFIX + answer.forward_to,
                request.data,
                reply=reply,
                headers=forward_headers(traceparent, detail),
            )
            return
        if answer.reservation is not None:  # before the reply: the race window is one message
            await nc.publish(RESERVATIONS_SUBJECT, answer.reservation)
        try:
            await request.respond(answer.payload, headers=answer.headers)
        except nats.errors.Error as exc:  # the connection closed meanwhile: nobody to answer
            log.debug("answering a check failed: %r", exc)
            return
        if answer.error is not None and endpoint:
            count_error(endpoint[0], answer.error)

    await service.add_endpoint(
        name=ENDPOINT_NAME,
        subject=subject,
        queue_group=queue,
        handler=check,
        metadata={"description": "request: CheckRequestMsg; reply: CheckReplyMsg (subjects.md)"},
    )
    endpoint.extend(getattr(service, "_endpoints", [])[-1:])
    await nc.flush()
    return service


async def drain_endpoints(service: Service) -> None:
    """Drain the endpoints' subscriptions: requests already received are answered.

    ``Service.stop()`` would drop them; the worker drains the endpoint before it flushes the
    audit queue, so every answered check's records reach the stream.
    """
    for endpoint in getattr(service, "_endpoints", []):
        sub = getattr(endpoint, "_subscription", None)
        if sub is not None:
            try:
                await sub.drain()
            except nats.errors.Error as exc:  # connection already closed or draining
                log.debug("draining the check endpoint failed: %r", exc)
