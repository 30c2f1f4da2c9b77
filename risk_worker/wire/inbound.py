"""Wire messages: one msgspec Struct per message of every subject, as in ``subjects.md``.

Inbound messages tolerate unknown fields (producers may add fields) and accept the aliases
peer services send (``account`` for ``account_id``; ``average_price``/``avg_price`` for
``entry_price``; ``side`` in any letter case). JSON cannot carry NaN or infinities and msgspec
refuses numbers out of double range; on top of that every number is held to the bounds of
:mod:`risk_worker.domain.bounds` (prices in [1e-12, 1e12], |quantities| ≤ 1e12, |money| ≤ 1e15,
timestamps ≤ 2100-01-01), so nothing derived from them can overflow. Parsing returns the
decision core's types or raises :class:`~risk_worker.errors.InvalidMessageError` naming the field;
JSON nested deeper than the decoder allows is ``malformed_json`` like any other bad JSON.

Account ids and symbols that key the book are interned (``sys.intern``), here, in
:mod:`~risk_worker.wire.ticks` and :mod:`~risk_worker.wire.check_request`: the same id is then
the same string object on every path, and a look-up in the book's dicts, or a comparison,
matches it by identity before comparing characters.
"""

from __future__ import annotations

import re
from sys import intern
from typing import Annotated, TypeVar

import msgspec

from risk_worker.domain.book_events import Fill, PnlSnapshot, PositionSnapshot
from risk_worker.domain.bounds import (
    MILLIS_MAX,
    MONEY_MAX,
    PRICE_MAX,
    PRICE_MIN,
    QUANTITY_MAX,
)
from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.types import IDENTIFIER_PATTERN, OrderType, Side
from risk_worker.errors import InvalidMessageError

T = TypeVar("T")

Identifier = Annotated[str, msgspec.Meta(pattern=IDENTIFIER_PATTERN)]
"""1-64 characters of A-Z a-z 0-9 _ - / = (subject tokens and KV keys)."""
Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
"""Order and fill ids: 1-128 characters."""
Price = Annotated[float, msgspec.Meta(ge=PRICE_MIN, le=PRICE_MAX)]
"""Quote per base unit, in [1e-12, 1e12]."""
PriceOrZero = Annotated[float, msgspec.Meta(ge=0, le=PRICE_MAX)]
"""A price, or 0 meaning none (checked against ``PRICE_MIN`` when not 0)."""
Quantity = Annotated[float, msgspec.Meta(gt=0, le=QUANTITY_MAX)]
"""Unsigned base units, in (0, 1e12]."""
SignedQuantity = Annotated[float, msgspec.Meta(ge=-QUANTITY_MAX, le=QUANTITY_MAX)]
"""Signed base units, |q| ≤ 1e12."""
Money = Annotated[float, msgspec.Meta(ge=-MONEY_MAX, le=MONEY_MAX)]
"""Quote currency, |x| ≤ 1e15."""
Rate = Annotated[float, msgspec.Meta(gt=0, le=1)]
"""A fraction in (0, 1]."""
Millis = Annotated[int, msgspec.Meta(ge=0, le=MILLIS_MAX)]
"""Milliseconds since the Unix epoch, at most 2100-01-01."""


class PositionUpdateMsg(msgspec.Struct, frozen=True):
    """``positions.update``: full state of one position (signed base quantity)."""

    symbol: Identifier
    quantity: SignedQuantity
    timestamp: Millis
    account_id: Identifier | None = None
    account: Identifier | None = None
    entry_price: PriceOrZero | None = None
    average_price: PriceOrZero | None = None
    avg_price: PriceOrZero | None = None
    strategy_id: Identifier | None = None


class FillMsg(msgspec.Struct, frozen=True):
    """``fills.confirmed``: one execution; quantity base units > 0, fee quote (debited)."""

    fill_id: Reference
    order_id: Reference
    symbol: Identifier
    side: str
    quantity: Quantity
    price: Price
    timestamp: Millis
    account_id: Identifier | None = None
    account: Identifier | None = None
    fee: Money = 0.0
    strategy_id: Identifier | None = None


class TickMsg(msgspec.Struct, frozen=True, gc=False):
    """``market.tick.<symbol>``: mark = price, else the mid of bid/ask (quote).

    The symbol is the subject's last token; a body ``symbol`` must equal it.
    """

    symbol: Identifier | None = None
    price: Price | None = None
    bid: Price | None = None
    ask: Price | None = None
    timestamp: Millis | None = None


class PnlUpdateMsg(msgspec.Struct, frozen=True):
    """``pnl.update``: wallet balance (authoritative) or equity, in quote currency."""

    timestamp: Millis
    account_id: Identifier | None = None
    account: Identifier | None = None
    balance: Money | None = None
    equity: Money | None = None
    realized_pnl: Money | None = None
    unrealized_pnl: Money | None = None


class ReservationMsg(msgspec.Struct, frozen=True, gc=False):
    """``risk.reservations``: headroom an instance reserved for an approved order.

    Every instance applies the others' so two cannot spend the same headroom. Quantities in
    base units (``signed_qty`` BUY positive), price in quote, rate a fraction, ms since epoch.
    """

    worker_id: str
    account_id: Identifier
    order_id: Reference
    symbol: Identifier
    signed_qty: SignedQuantity
    increasing_qty: Annotated[float, msgspec.Meta(ge=0, le=QUANTITY_MAX)]
    price: Price
    margin_rate: Rate
    expires_ms: Millis
    strategy_id: Identifier | None = None
    quantity: Annotated[float, msgspec.Meta(ge=0, le=QUANTITY_MAX)] = 0.0
    limit_price: Price | None = None
    order_type: OrderType | None = None


def reservation_msg(worker_id: str, account_id: str, r: PendingOrder) -> ReservationMsg:
    """The announcement of a reservation this instance made."""
    return ReservationMsg(
        worker_id,
        account_id,
        r.order_id,
        r.symbol,
        r.signed_qty,
        r.increasing_qty,
        r.price,
        r.margin_rate,
        r.expires_ms,
        r.strategy_id,
        r.quantity,
        r.limit_price,
        r.order_type,
    )


def pending_order(m: ReservationMsg) -> PendingOrder:
    """The reservation another instance announced (its risk level is not announced: HIGH)."""
    return PendingOrder(
        m.order_id,
        intern(m.symbol),
        m.signed_qty,
        m.increasing_qty,
        m.price,
        m.margin_rate,
        m.expires_ms,
        m.strategy_id,
        m.quantity,
        m.limit_price,
        m.order_type,
    )


class _Ids(msgspec.Struct):
    """Best-effort ids of a malformed request, to echo them in the error reply."""

    order_id: object = None
    account_id: object = None
    account: object = None


_POSITION = msgspec.json.Decoder(PositionUpdateMsg)
_FILL = msgspec.json.Decoder(FillMsg)
_PNL = msgspec.json.Decoder(PnlUpdateMsg)
_IDS = msgspec.json.Decoder(_Ids)
_RESERVATION = msgspec.json.Decoder(ReservationMsg)
_SIDES = {s.value: s for s in Side}
_AT = re.compile(r" - at `\$\.?([^`]*)`$")


def _invalid(exc: msgspec.MsgspecError) -> InvalidMessageError:
    """Map a msgspec error to InvalidMessageError with the field and a reason code."""
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return InvalidMessageError("$", "malformed_json", text)
    match = _AT.search(text)
    field = match.group(1) if match and match.group(1) else "$"
    if "missing required field" in text:
        quoted = re.search(r"field `([^`]+)`", text)
        field = quoted.group(1) if quoted else field
        reason = "missing_field"
    elif "regex" in text:
        reason = "bad_identifier"
    elif "Number out of range" in text:
        reason = "non_finite"
    elif "Expected `" in text and "`, got `" in text:
        reason = "wrong_type"
    else:
        reason = "out_of_range"
    return InvalidMessageError(field, reason, text)


def _decode(decoder: msgspec.json.Decoder[T], data: bytes) -> T:
    """Decode ``data``; every failure, including JSON nested too deep, is InvalidMessageError."""
    try:
        return decoder.decode(data)
    except msgspec.MsgspecError as exc:
        raise _invalid(exc) from exc
    except RecursionError as exc:  # msgspec's nesting limit (about 1,000 levels)
        raise InvalidMessageError("$", "malformed_json", "JSON nested too deeply") from exc


def _price_or_none(value: float | None, field: str) -> float | None:
    """``value`` when > 0 (then at least ``PRICE_MIN``); None for null or 0."""
    if not value:
        return None
    if value < PRICE_MIN:
        raise InvalidMessageError(field, "out_of_range", f"{field} must be 0 or ≥ {PRICE_MIN}")
    return value


def _account(msg: PositionUpdateMsg | FillMsg | PnlUpdateMsg) -> str:
    account = msg.account_id if msg.account_id is not None else msg.account
    if account is None:
        raise InvalidMessageError(
            "account_id", "missing_field", "account_id (or account) is required"
        )
    return account


def _side(value: str) -> Side:
    side = _SIDES.get(value) or _SIDES.get(value.upper())
    if side is None:
        raise InvalidMessageError(
            "side", "out_of_range", f"side must be BUY or SELL, got {value!r}"
        )
    return side


def parse_position(data: bytes) -> PositionSnapshot:
    """Decode ``positions.update``; entry price required (> 0) unless the position is flat."""
    msg = _decode(_POSITION, data)
    entry = msg.entry_price
    if entry is None:
        entry = msg.average_price if msg.average_price is not None else msg.avg_price
    if msg.quantity != 0.0 and not entry:
        raise InvalidMessageError("entry_price", "missing_field", "entry_price > 0 is required")
    if msg.quantity != 0.0:
        entry = _price_or_none(entry, "entry_price")
    return PositionSnapshot(
        intern(_account(msg)),
        intern(msg.symbol),
        msg.quantity,
        entry or 0.0,
        msg.timestamp,
        msg.strategy_id,
    )


def parse_fill(data: bytes) -> Fill:
    """Decode ``fills.confirmed``."""
    m = _decode(_FILL, data)
    return Fill(
        m.fill_id,
        m.order_id,
        intern(_account(m)),
        intern(m.symbol),
        _side(m.side),
        m.quantity,
        m.price,
        m.fee,
        m.timestamp,
        m.strategy_id,
    )


def parse_pnl(data: bytes) -> PnlSnapshot:
    """Decode ``pnl.update``; it must carry balance or equity."""
    m = _decode(_PNL, data)
    if m.balance is None and m.equity is None:
        raise InvalidMessageError("balance", "missing_field", "balance or equity is required")
    return PnlSnapshot(_account(m), m.balance, m.equity, m.realized_pnl, m.timestamp)


def parse_reservation(data: bytes) -> ReservationMsg:
    """Decode ``risk.reservations``."""
    return _decode(_RESERVATION, data)


def request_ids(data: bytes) -> tuple[str | None, str | None]:
    """(order_id, account_id) of a request, when they can be read at all; for error replies."""
    try:
        ids = _IDS.decode(data)
    except (msgspec.MsgspecError, RecursionError):
        return None, None
    order_id = ids.order_id if isinstance(ids.order_id, str) else None
    account = ids.account_id if ids.account_id is not None else ids.account
    return order_id, account if isinstance(account, str) else None
