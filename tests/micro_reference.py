"""The services protocol as the worker served it before, with nats.micro: the reference that
``tests/integration/test_discovery.py`` holds :mod:`risk_worker.adapters.discovery` to.

The registration and handlers of ``risk_worker/adapters/micro_service.py`` and of
``add_query_endpoints`` in ``query_endpoints.py`` as they were (commit f5f9a7b), with the
worker's constants: one nats.micro ``Service`` named ``risk-worker`` with the worker id in its
metadata, the endpoint ``check_order`` then the query endpoints, the ``$SRV`` verb handlers
wrapped by the reply guard, and an answered error counted in nats.micro's private counters.
"""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client
from nats.micro.request import Request
from nats.micro.service import Service, ServiceConfig

from risk_worker import __version__
from risk_worker.adapters.check_handler import CheckHandler
from risk_worker.adapters.discovery import DESCRIPTION, SERVICE_NAME
from risk_worker.adapters.nats_service import CHECK_DESCRIPTION, CHECK_ENDPOINT
from risk_worker.adapters.query_endpoints import ENDPOINTS, answers
from risk_worker.adapters.query_handler import QueryHandler
from risk_worker.adapters.reply_guard import ReplyGuard
from risk_worker.wire.trace import header_traceparent

VERB_HANDLERS = {
    "_handle_ping_request": "$SRV.PING",
    "_handle_info_request": "$SRV.INFO",
    "_handle_stats_request": "$SRV.STATS",
}


def count_error(endpoint: Any, message: str) -> None:
    """Count a handled error in the endpoint's ``$SRV.STATS`` (nats.micro private fields)."""
    endpoint._num_errors += 1
    endpoint._last_error = message


async def start_micro_service(
    nc: Client,
    checks: CheckHandler,
    queries: QueryHandler,
    subject: str,
    queue: str,
    worker_id: str,
    replies: ReplyGuard,
) -> Service:
    """Register the service, ``check_order`` and the query endpoints, as the worker did."""
    config = ServiceConfig(
        name=SERVICE_NAME,
        version=__version__,
        description=DESCRIPTION,
        metadata={"worker_id": worker_id},
        queue_group=queue,
    )
    service = Service(nc, config)
    for name, verb in VERB_HANDLERS.items():
        setattr(service, name, replies.guard(getattr(service, name), verb))
    await service.start()
    endpoint: list[Any] = []

    async def check(request: Request) -> None:
        reply = request._msg.reply
        if not replies.accepts(reply, subject):
            return
        answer = checks.answer(request.data, traceparent=header_traceparent(request.headers))
        assert answer.forward_to is None and answer.reservation is None  # not in these tests
        await request.respond(answer.payload, headers=answer.headers)
        if answer.error is not None and endpoint:
            count_error(endpoint[0], answer.error)

    await service.add_endpoint(
        name=CHECK_ENDPOINT,
        subject=subject,
        queue_group=queue,
        handler=check,
        metadata={"description": CHECK_DESCRIPTION},
    )
    endpoint.extend(service._endpoints[-1:])
    table = answers(queries)
    for name, query_subject, description in ENDPOINTS:
        mine: list[Any] = []

        async def handle(
            request: Request, query_subject: str = query_subject, mine: list[Any] = mine
        ) -> None:
            if not replies.accepts(request._msg.reply, query_subject):
                return
            answer = table[query_subject](request.data, header_traceparent(request.headers), None)
            assert answer.forward_to is None and not answer.reservations
            await request.respond(answer.payload, headers=answer.headers)
            if answer.error is not None and mine:
                count_error(mine[0], answer.error)

        await service.add_endpoint(
            name=name,
            subject=query_subject,
            queue_group=queue,
            handler=handle,
            metadata={"description": description + " (subjects.md)"},
        )
        mine.extend(service._endpoints[-1:])
    await nc.flush()
    return service
