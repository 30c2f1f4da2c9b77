"""The worker as a NATS service (``$SRV.PING``, ``$SRV.INFO``, ``$SRV.STATS``) on plain
subscriptions, answered from its own counters.

Standard NATS tooling (``nats micro ls/info/stats``, ``risk-worker services``) finds the worker
as service ``risk-worker`` (version from the package metadata, a description, the worker id in
the metadata) with the endpoints ``check_order`` (``risk.check.order``) and the query endpoints,
in queue group ``risk-workers``. The answers are nats.micro's (nats-py ``nats/micro/service.py``,
which served them before) field for field and in the same JSON layout: the ``type``
``io.nats.micro.v1.{ping,info,stats}_response``, ``name``, ``id`` (a NUID drawn at start, as
nats.micro draws it), ``version``, ``description``, ``metadata``, ``endpoints`` with ``name``,
``subject``, ``queue_group`` and ``metadata`` (INFO) or their counters (STATS: ``num_requests``,
``num_errors``, ``last_error``, ``processing_time`` and ``average_processing_time`` in ns,
``data`` null), and ``started`` (UTC, ms, ``Z``). Each verb is served on ``$SRV.<VERB>``,
``$SRV.<VERB>.risk-worker`` and ``$SRV.<VERB>.risk-worker.<id>``, and each answer goes only to
an accepted inbox (:mod:`risk_worker.adapters.reply_guard`), echoing the request's headers as
nats.micro's ``msg.respond`` did.

Why not nats.micro: per request its endpoint wrapper builds a ``Request``, awaits the handler
through one more coroutine and replies through another, and counting an error whose reply the
worker sends itself needed its private fields. Here a request costs one coroutine, two integer
additions and two clock reads (:meth:`Discovery.counted`): ``benchmarks/services_wrapper.py
--callgrind`` counts about 3,100 instructions a check over no services protocol, against
7,600-7,900 for nats.micro (a check is about 290,000).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.nuid import NUID

from risk_worker import __version__
from risk_worker.adapters.reply_guard import ReplyGuard

log = logging.getLogger(__name__)

SERVICE_NAME = "risk-worker"
DESCRIPTION = "Pre-trade risk checks: may this order go? No reply or a timeout means DENIED."
PREFIX = "$SRV"
RESPONSE_TYPE = "io.nats.micro.v1.{}_response"
"""The ``type`` of each verb's answer, ``{}`` its verb in lower case."""
ERROR_CODE = "Nats-Service-Error-Code"
ERROR_TEXT = "Nats-Service-Error"

Handler = Callable[[Msg], Awaitable[str | None]]
"""A request handler: answers (or drops) the request; the text of the error it answered
(an error reply counts in ``num_errors``), else None."""


class Endpoint:
    """One endpoint and its counters (plain ints; times in ns).

    Attributes:
        num_requests: requests received (dropped ones included, as nats.micro counted them).
        num_errors: requests answered with an error (``Nats-Service-Error-Code``).
        last_error: the text of the last error, ``""`` before the first.
        processing_time: ns spent handling requests, summed.
    """

    __slots__ = (
        "last_error",
        "metadata",
        "name",
        "num_errors",
        "num_requests",
        "processing_time",
        "queue_group",
        "subject",
    )

    def __init__(self, name: str, subject: str, queue_group: str, description: str) -> None:
        self.name = name
        self.subject = subject
        self.queue_group = queue_group
        self.metadata = {"description": description}
        self.num_requests = 0
        self.num_errors = 0
        self.last_error = ""
        self.processing_time = 0

    def error(self, text: str) -> None:
        """Count one error answered."""
        self.num_errors += 1
        self.last_error = text

    def info(self) -> dict[str, Any]:
        """The endpoint in ``$SRV.INFO``."""
        return {
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "metadata": self.metadata,
        }

    def stats(self) -> dict[str, Any]:
        """The endpoint in ``$SRV.STATS`` (average: ns, rounded down; 0 before a request)."""
        n = self.num_requests
        return {
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "num_requests": n,
            "num_errors": self.num_errors,
            "last_error": self.last_error,
            "processing_time": self.processing_time,
            "average_processing_time": int(self.processing_time / n) if n else 0,
            "data": None,
        }


class Discovery:
    """The service's identity, its endpoints' counters and the ``$SRV`` responders.

    Args:
        nc: the worker's connection.
        worker_id: this instance's id (``metadata.worker_id``).
        replies: vets each ``$SRV`` request's reply subject.
    """

    def __init__(self, nc: Client, worker_id: str, replies: ReplyGuard) -> None:
        self._nc = nc
        self._replies = replies
        self.id = NUID().next().decode()
        self.metadata = {"worker_id": worker_id}
        self.endpoints: list[Endpoint] = []
        self.started = datetime.now(UTC)

    async def start(self) -> list[Subscription]:
        """Subscribe the three verbs on their three subjects each; the subscriptions."""
        subs = []
        for verb, answer in (("PING", self.ping), ("INFO", self.info), ("STATS", self.stats)):
            respond = self._replies.guard(self._responder(answer), f"{PREFIX}.{verb}")
            for subject in (
                f"{PREFIX}.{verb}",
                f"{PREFIX}.{verb}.{SERVICE_NAME}",
                f"{PREFIX}.{verb}.{SERVICE_NAME}.{self.id}",
            ):
                subs.append(await self._nc.subscribe(subject, cb=respond))
        self.started = datetime.now(UTC)
        return subs

    def _responder(self, answer: Callable[[], dict[str, Any]]) -> Callable[[Msg], Awaitable[None]]:
        async def respond(msg: Msg) -> None:
            try:
                await self._nc.publish(
                    msg.reply, json.dumps(answer()).encode(), headers=msg.headers
                )
            except nats.errors.Error as exc:  # the connection closed meanwhile
                log.debug("answering %s failed: %r", msg.subject, exc)

        return respond

    def counted(self, endpoint: Endpoint, handler: Handler) -> Callable[[Msg], Awaitable[None]]:
        """``handler`` as a subscription callback that counts in ``endpoint``.

        A handler that raises is counted as an error (``repr`` of the exception) and, when
        the reply subject is an accepted inbox, answered with error 500, as nats.micro did.
        """
        clock = time.perf_counter_ns

        async def on_msg(msg: Msg) -> None:
            started = clock()
            endpoint.num_requests += 1
            try:
                error = await handler(msg)
            except Exception as exc:
                endpoint.error(repr(exc))
                await self._answer_failure(msg, repr(exc))
            else:
                if error is not None:
                    endpoint.error(error)
            endpoint.processing_time += clock() - started

        return on_msg

    async def _answer_failure(self, msg: Msg, text: str) -> None:
        """Log the handler's exception (a closed connection only at debug level) and answer
        error 500 when the reply subject is an accepted inbox."""
        if isinstance(sys.exc_info()[1], nats.errors.Error):
            log.debug("answering a request on %s failed: %s", msg.subject, text)
        else:
            log.exception("answering a request on %s failed", msg.subject)
        if msg.reply.startswith(self._replies.prefixes):
            try:
                await self._nc.publish(
                    msg.reply, b"", headers={ERROR_TEXT: text, ERROR_CODE: "500"}
                )
            except nats.errors.Error as exc:
                log.debug("answering %s failed: %r", msg.subject, exc)

    def endpoint(self, name: str, subject: str, queue_group: str, description: str) -> Endpoint:
        """Add an endpoint (listed in the order added)."""
        endpoint = Endpoint(name, subject, queue_group, description)
        self.endpoints.append(endpoint)
        return endpoint

    def _identity(self, verb: str) -> dict[str, Any]:
        return {
            "type": RESPONSE_TYPE.format(verb),
            "id": self.id,
            "name": SERVICE_NAME,
            "version": __version__,
        }

    def ping(self) -> dict[str, Any]:
        """The ``$SRV.PING`` answer."""
        return {**self._identity("ping"), "metadata": self.metadata}

    def info(self) -> dict[str, Any]:
        """The ``$SRV.INFO`` answer."""
        return {
            **self._identity("info"),
            "description": DESCRIPTION,
            "endpoints": [e.info() for e in self.endpoints],
            "metadata": self.metadata,
        }

    def stats(self) -> dict[str, Any]:
        """The ``$SRV.STATS`` answer (nats.micro's key order: name before id)."""
        return {
            "type": RESPONSE_TYPE.format("stats"),
            "name": SERVICE_NAME,
            "id": self.id,
            "version": __version__,
            "started": self.started.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "endpoints": [e.stats() for e in self.endpoints],
            "metadata": self.metadata,
        }
