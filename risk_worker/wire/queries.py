"""Queries over NATS request/reply: ``risk.query.metrics``, ``risk.query.states`` and
``risk.check.batch`` (subjects.md §3.15-§3.18): their messages and the batch parser.

Error replies of the queries carry the services protocol's error headers and a
:class:`QueryErrorMsg` body: 400 ``invalid_request`` naming the field, 404 ``unknown_account``,
503 when the worker cannot answer truthfully (``policies_unavailable``,
``trading_state_unknown``).
"""

from __future__ import annotations

import msgspec

from risk_worker.domain.order import Order
from risk_worker.errors import InvalidMessageError
from risk_worker.wire.check_request import check_order, decode_check
from risk_worker.wire.detail import FULL, Detail, header_full
from risk_worker.wire.inbound import Identifier, _decode
from risk_worker.wire.outbound import CheckReplyMsg


class MetricsQueryMsg(msgspec.Struct, frozen=True):
    """``risk.query.metrics`` request: whose metrics."""

    account_id: Identifier


class BatchRequestMsg(msgspec.Struct, frozen=True):
    """``risk.check.batch`` request: 1 to ``RISK_MAX_BATCH`` check requests of one account,
    decided in order (each a ``CheckRequestMsg``); ``detail`` ``full``: every approval with
    its post-trade metrics (an order's own ``detail`` asks for it alone)."""

    orders: list[msgspec.Raw]
    all_or_none: bool = False
    detail: Detail = "compact"


class BatchRequest(msgspec.Struct, frozen=True, gc=False):
    """A parsed batch: its orders, ``all_or_none``, and for each order whether its reply is
    full (the batch's ``detail``, the order's own or the ``Risk-Detail`` header said so)."""

    orders: list[Order]
    all_or_none: bool
    full: list[bool]


class BatchReplyMsg(msgspec.Struct, frozen=True, gc=False):
    """``risk.check.batch`` reply: one decision per order, in order; ``approved`` when all are."""

    decisions: list[CheckReplyMsg]
    approved: bool
    worker_id: str


class StateRowMsg(msgspec.Struct, frozen=True, gc=False):
    """One trading-state key of the worker's confirmed copy (ms since epoch)."""

    key: str
    state: str
    reason: str
    updated_by: str
    updated_at: int
    revision: int


class RestrictionRowMsg(msgspec.Struct, frozen=True, gc=False):
    """One restricted-list entry (``account_id`` null: every account)."""

    key: str
    symbol: str
    account_id: str | None
    reason: str
    by: str
    at: int
    revision: int


class StatesReplyMsg(msgspec.Struct, frozen=True, gc=False):
    """``risk.query.states`` reply: the worker's confirmed copy of the bucket."""

    confirmed: bool
    states: list[StateRowMsg]
    restrictions: list[RestrictionRowMsg]
    worker_id: str


class QueryErrorMsg(msgspec.Struct, frozen=True, gc=False):
    """Body of a query's error reply: a code (``invalid_request``, ``unknown_account``,
    ``policies_unavailable``, ``trading_state_unknown``), the field at fault (400 only), a
    sentence."""

    error: str
    message: str
    field: str | None = None


_METRICS_QUERY = msgspec.json.Decoder(MetricsQueryMsg)
_BATCH = msgspec.json.Decoder(BatchRequestMsg)


def _too_large(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise InvalidMessageError("$", "too_large", f"request of {len(data)} bytes > {max_bytes}")


def parse_metrics_query(data: bytes, max_bytes: int) -> str:
    """The account id of a ``risk.query.metrics`` request.

    Raises:
        InvalidMessageError: too large, not JSON, or ``account_id`` missing or malformed.
    """
    _too_large(data, max_bytes)
    return _decode(_METRICS_QUERY, data).account_id


def parse_batch(
    data: bytes, max_bytes: int, max_batch: int, detail: str | None = None
) -> BatchRequest:
    """The orders, ``all_or_none`` and reply detail of a ``risk.check.batch`` request.

    Args:
        data: the request (at most ``max_bytes`` bytes in all).
        max_bytes: ``RISK_MAX_REQUEST_BYTES``.
        max_batch: ``RISK_MAX_BATCH``, the most orders a batch may hold.
        detail: the request's ``Risk-Detail`` header as received (None: absent).

    Raises:
        InvalidMessageError: too large, not JSON, ``orders`` empty, longer than ``max_batch``
            or naming several accounts (field ``orders``), an order id repeated (field
            ``orders[i].order_id``), an order invalid as a single check request would be
            (field ``orders[i].<field>``), or a ``detail`` other than ``full`` or ``compact``
            (field ``detail``, ``orders[i].detail`` or ``Risk-Detail``).
    """
    _too_large(data, max_bytes)
    request = _decode(_BATCH, data)
    all_full = request.detail == FULL or header_full(detail)
    raws = request.orders
    if not 1 <= len(raws) <= max_batch:
        raise InvalidMessageError(
            "orders", "out_of_range", f"a batch holds 1 to {max_batch} orders, got {len(raws)}"
        )
    orders: list[Order] = []
    full: list[bool] = []
    for i, raw in enumerate(raws):
        try:
            m = decode_check(bytes(raw), max_bytes)
            orders.append(check_order(m))
            full.append(all_full or m.detail == FULL)
        except InvalidMessageError as exc:
            field = f"orders[{i}]" if exc.field == "$" else f"orders[{i}].{exc.field}"
            raise InvalidMessageError(field, exc.reason, exc.detail) from exc
    seen: set[str] = set()
    for i, o in enumerate(orders):
        if o.order_id in seen:
            raise InvalidMessageError(
                f"orders[{i}].order_id", "out_of_range", f"order id {o.order_id!r} is repeated"
            )
        seen.add(o.order_id)
    account_id = orders[0].account_id
    if any(o.account_id != account_id for o in orders):
        raise InvalidMessageError(
            "orders", "out_of_range", "every order of a batch must be of the same account"
        )
    return BatchRequest(orders, request.all_or_none, full)
