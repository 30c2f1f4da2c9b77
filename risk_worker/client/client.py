"""``RiskClient``: ask the risk workers over NATS request/reply, typed and fail-closed.

``check`` and ``check_batch`` never raise for what the network or the worker did: no reply,
no responders, a timeout or a bad reply come back as denied decisions (subjects.md §6).
``metrics`` and ``states`` are queries, not decisions: they raise :class:`QueryError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from risk_worker.adapters.nats_auth import NatsAuth, open_connection
from risk_worker.client.decision import (
    BAD_REPLY,
    ERROR_CODE,
    NO_REPLY,
    NO_RESPONDERS,
    TIMEOUT,
    BatchDecision,
    CheckOrder,
    Decision,
    OrderIds,
    decode_batch,
    decode_check,
    denied,
    denied_batch,
    new_order_id,
)
from risk_worker.errors import RiskWorkerError
from risk_worker.wire.detail import COMPACT, DETAIL_HEADER, FULL, Detail
from risk_worker.wire.outbound import RiskMetricsMsg
from risk_worker.wire.queries import QueryErrorMsg, StatesReplyMsg
from risk_worker.wire.trace import TRACEPARENT

CHECK_SUBJECT = "risk.check.order"
BATCH_SUBJECT = "risk.check.batch"
METRICS_SUBJECT = "risk.query.metrics"
STATES_SUBJECT = "risk.query.states"
DEFAULT_TIMEOUT_S = 2.0
"""Seconds a request waits for its reply (the CLI's default too)."""

Order = CheckOrder | Mapping[str, Any]
"""An order: a :class:`CheckOrder`, or a mapping of the fields of subjects.md §3.5 (an
``order_id`` is made up when absent)."""
T = TypeVar("T")
_ENC = msgspec.json.Encoder()


class QueryError(RiskWorkerError):
    """A query (``metrics``, ``states``) was not answered as asked.

    Attributes:
        reason: a client-side reason (``no_reply``, ``no_responders``, ``timeout``,
            ``bad_reply``) or the service error's ``error`` (``unknown_account`` …).
        code: the ``Nats-Service-Error-Code`` (``"404"`` …), None for client-side reasons.
        field: the invalid field of a 400, else None.
    """

    def __init__(
        self, reason: str, message: str, code: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.code = code
        self.field = field


def _prepare(order: Order) -> tuple[bytes, str | None, str | None]:
    """(request bytes, order_id, account_id) of ``order``."""
    if isinstance(order, CheckOrder):
        return _ENC.encode(order), order.order_id, order.account_id
    body = dict(order)
    body.setdefault("order_id", new_order_id())
    order_id, account_id = body.get("order_id"), body.get("account_id", body.get("account"))
    ids = (
        order_id if isinstance(order_id, str) else None,
        account_id if isinstance(account_id, str) else None,
    )
    return _ENC.encode(body), *ids


def _unanswered(exc: BaseException) -> tuple[str, str]:
    """(client-side reason, sentence) of a request that got no reply."""
    if isinstance(exc, nats.errors.NoRespondersError):
        return NO_RESPONDERS, "no risk worker is subscribed to the subject"
    if isinstance(exc, (nats.errors.TimeoutError, TimeoutError)):
        return TIMEOUT, "no reply within the timeout"
    return NO_REPLY, f"the request was not answered ({type(exc).__name__}: {exc})"


def _check_detail(detail: object) -> None:
    """Refuse a ``detail`` the worker would refuse (a programming error, not a decision)."""
    if detail is not None and detail not in (FULL, COMPACT):
        raise ValueError(f"detail must be 'full', 'compact' or None, got {detail!r}")


class RiskClient:
    """A client of the risk workers on a NATS connection.

    Args:
        nc: a connected nats-py client (an OMS may share its own).
        timeout: seconds each request waits for its reply by default.
        owns_connection: ``close()`` closes ``nc`` (True when made by :meth:`connect`).
    """

    def __init__(
        self, nc: Client, timeout: float = DEFAULT_TIMEOUT_S, owns_connection: bool = False
    ) -> None:
        self.nc = nc
        self.timeout = timeout
        self._owns = owns_connection

    @classmethod
    async def connect(
        cls,
        url: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        auth: NatsAuth | None = None,
        inbox_prefix: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109  # the requests' default
        connect_timeout: float = 3.0,
        allow_reconnect: bool = True,
        name: str = "risk-worker client",
    ) -> RiskClient:
        """Connect to NATS and return a client that closes the connection on ``close()``.

        Args:
            url: server URL(s): one, comma-separated ones, or a list.
            auth: credentials and TLS (``NatsAuth``; ``load_nats_auth()`` reads the CLI's
                ``RISK_NATS_*`` variables).
            inbox_prefix: reply-subject prefix instead of ``_INBOX`` (overrides ``auth``'s);
                the compose stack's ``client`` user needs ``_INBOX_client``.
            timeout: seconds each request waits for its reply by default.
            connect_timeout: seconds to reach a server.
            allow_reconnect: reconnect after a lost connection (False: a lost server ends it).

        Raises:
            NatsAuthError: the server refused the credentials.
            OSError, nats.errors.Error: no server answered.
        """
        servers = [u.strip() for u in url.split(",")] if isinstance(url, str) else list(url)
        auth = auth or NatsAuth()
        if inbox_prefix is not None:
            auth = msgspec.structs.replace(auth, inbox_prefix=inbox_prefix)
        options: dict[str, Any] = {"allow_reconnect": allow_reconnect}
        if not allow_reconnect:
            options["max_reconnect_attempts"] = 1
        nc = await open_connection(
            servers, auth, connect_timeout=connect_timeout, name=name, **options
        )
        return cls(nc, timeout, owns_connection=True)

    async def _request(
        self,
        subject: str,
        body: bytes,
        timeout: float | None,  # noqa: ASYNC109  # nats-py's request timeout
        traceparent: str | None,
        detail: Detail | None = None,
    ) -> Msg:
        headers: dict[str, str] | None = None
        if traceparent or detail is not None:
            headers = {TRACEPARENT: traceparent} if traceparent else {}
            if detail is not None:
                headers[DETAIL_HEADER] = detail
        wait = self.timeout if timeout is None else timeout
        return await self.nc.request(subject, body, timeout=wait, headers=headers)

    async def check(
        self,
        order: Order,
        *,
        timeout: float | None = None,  # noqa: ASYNC109  # nats-py's request timeout
        traceparent: str | None = None,
        detail: Detail | None = None,
    ) -> Decision:
        """Ask whether ``order`` may go (``risk.check.order``); send it only when approved.

        Args:
            order: the order (see :data:`Order`).
            timeout: seconds to wait for the reply (default: the client's).
            traceparent: a W3C ``traceparent`` sent as the request's header; the worker echoes
                it and keeps it in its logs and violation records (a malformed one is ignored).
            detail: ``"full"``: an approval comes with its ``post_trade_metrics`` (sent as the
                ``Risk-Detail`` header, subjects.md §5.2); None or ``"compact"``: without
                (a denial by policy carries them either way).

        Returns:
            the decision; denied with ``no_responders``, ``timeout``, ``no_reply`` or
            ``bad_reply`` when the worker's answer is missing or unreadable (never raised).

        Raises:
            ValueError: ``detail`` is neither ``"full"``, ``"compact"`` nor None.
        """
        _check_detail(detail)
        body, order_id, account_id = _prepare(order)
        try:
            msg = await self._request(CHECK_SUBJECT, body, timeout, traceparent, detail)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            reason, why = _unanswered(exc)
            return denied(order_id, account_id, reason, why)
        return decode_check(msg.data, msg.headers, order_id, account_id)

    async def check_batch(
        self,
        orders: Sequence[Order],
        all_or_none: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109  # nats-py's request timeout
        traceparent: str | None = None,
        detail: Detail | None = None,
    ) -> BatchDecision:
        """Check orders of one account as one ``risk.check.batch``, decided in order with the
        earlier ones reserved; ``all_or_none``: one denial denies all and reserves nothing.
        ``detail``: as for :meth:`check`, for every order of the batch.

        Returns:
            one decision per order; every one denied (with the batch's reason) when the batch
            was not decided: no reply, a bad reply, or a service error such as 400.

        Raises:
            ValueError: ``detail`` is neither ``"full"``, ``"compact"`` nor None.
        """
        _check_detail(detail)
        prepared = [_prepare(o) for o in orders]
        ids: OrderIds = [(o, a) for _b, o, a in prepared]
        raw = b",".join(b for b, _o, _a in prepared)
        tail = b'],"all_or_none":' + (b"true}" if all_or_none else b"false}")
        body = b'{"orders":[' + raw + tail
        try:
            msg = await self._request(BATCH_SUBJECT, body, timeout, traceparent, detail)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            reason, why = _unanswered(exc)
            return denied_batch(ids, reason, why)
        return decode_batch(msg.data, msg.headers, ids)

    async def _query(
        self,
        subject: str,
        body: bytes,
        timeout: float | None,  # noqa: ASYNC109  # nats-py's request timeout
        kind: type[T],
    ) -> T:
        try:
            msg = await self._request(subject, body, timeout, None)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            reason, _why = _unanswered(exc)
            raise QueryError(reason, f"no reply on {subject} ({type(exc).__name__})") from exc
        code = (msg.headers or {}).get(ERROR_CODE)
        try:
            if code is not None:
                error = msgspec.json.decode(msg.data, type=QueryErrorMsg)
                raise QueryError(error.error, error.message, code, error.field)
            return msgspec.json.decode(msg.data, type=kind)
        except (msgspec.DecodeError, ValueError) as exc:
            raise QueryError(BAD_REPLY, f"undecodable reply on {subject}: {exc}", code) from exc

    async def metrics(
        self,
        account_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109  # nats-py's request timeout
    ) -> RiskMetricsMsg:
        """The account's risk metrics now (``risk.query.metrics``).

        Raises:
            QueryError: ``unknown_account`` (404) and the other errors of subjects.md §5, or
                a client-side reason (no reply, no responders, timeout, bad reply).
        """
        body = _ENC.encode({"account_id": account_id})
        return await self._query(METRICS_SUBJECT, body, timeout, RiskMetricsMsg)

    async def states(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109  # nats-py's request timeout
    ) -> StatesReplyMsg:
        """Every trading state and restriction of an instance's confirmed copy
        (``risk.query.states``).

        Raises:
            QueryError: ``trading_state_unknown`` (503) while unconfirmed, or a client-side
                reason.
        """
        return await self._query(STATES_SUBJECT, b"{}", timeout, StatesReplyMsg)

    async def close(self) -> None:
        """Close the connection when this client opened it (else leave it to its owner)."""
        if self._owns and not self.nc.is_closed:
            await self.nc.close()

    async def __aenter__(self) -> RiskClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
