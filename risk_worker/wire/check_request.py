"""``risk.check.order`` requests: the contract's message, and its decoding into an :class:`Order`.

:class:`CheckRequestMsg` is the request as the contract publishes it (subjects.md §3.5; its
JSON Schema has the identifier ``pattern``). Decoding does not use it: msgspec checks a
``pattern`` by calling the regex on every decode, about 0.7 µs per identifier field: 2.1 µs of
the 2.8 µs a check's decode took (``timeit`` on the bench's requests, docs/performance.md). A
request is decoded into :class:`CheckRequestFields`, its twin whose identifier fields are plain
strings, and :func:`check_order` holds each identifier to
:data:`~risk_worker.domain.types.IDENTIFIER_PATTERN` itself, remembering the values that passed
(:class:`KnownIdentifiers`, bounded): an account, symbol or strategy seen before costs a dict
look-up. A request is refused exactly when it was before, naming the same field with the same
reason (``bad_identifier``) and text; ``tests/unit/test_wire_check_request.py`` holds the twin
to the contract's message.
"""

from __future__ import annotations

import re
from sys import intern

import msgspec

from risk_worker.domain.order import Order
from risk_worker.domain.types import IDENTIFIER_PATTERN, OrderType
from risk_worker.domain.vocab import ORDER_TYPE_LIMIT, ORDER_TYPE_MARKET
from risk_worker.errors import InvalidMessageError
from risk_worker.wire.detail import Detail
from risk_worker.wire.inbound import (
    Identifier,
    Millis,
    PriceOrZero,
    Quantity,
    Reference,
    _decode,
    _price_or_none,
    _side,
)


class CheckRequestMsg(msgspec.Struct, frozen=True):
    """``risk.check.order`` request. price null/absent/0 means a market order; ``detail``
    ``full`` asks for the post-trade metrics on an approval (subjects.md §5.2)."""

    order_id: Reference
    symbol: Identifier
    side: str
    quantity: Quantity
    account_id: Identifier | None = None
    account: Identifier | None = None
    price: PriceOrZero | None = None
    order_type: str | None = None
    strategy_id: Identifier | None = None
    reduce_only: bool = False
    dry_run: bool = False
    timestamp: Millis = 0
    detail: Detail = "compact"


class CheckRequestFields(msgspec.Struct, frozen=True):
    """:class:`CheckRequestMsg` as decoded: the same fields, bounds and defaults, but
    ``symbol``, ``account_id``, ``account`` and ``strategy_id`` plain strings, checked by
    :func:`check_order`."""

    order_id: Reference
    symbol: str
    side: str
    quantity: Quantity
    account_id: str | None = None
    account: str | None = None
    price: PriceOrZero | None = None
    order_type: str | None = None
    strategy_id: str | None = None
    reduce_only: bool = False
    dry_run: bool = False
    timestamp: Millis = 0
    detail: Detail = "compact"


KNOWN_MAX = 32_768
"""Most identifiers :class:`KnownIdentifiers` remembers (accounts, symbols and strategies of
the check requests seen; a book's usually far fewer)."""


class KnownIdentifiers:
    """Identifiers that matched :data:`~risk_worker.domain.types.IDENTIFIER_PATTERN`, at most
    ``limit`` of them (forgotten all at once beyond: a flood of new ids costs the regex, as
    every id did before; the memory held stays bounded, about 7 MB at the default limit with
    64-character ids)."""

    __slots__ = ("_known", "limit")

    def __init__(self, limit: int = KNOWN_MAX) -> None:
        self._known: dict[str, str] = {}
        self.limit = limit

    def check(self, value: str, field: str) -> str:
        """``value`` (interned, as :mod:`~risk_worker.wire.inbound` keys the book) when it is
        an identifier, else InvalidMessageError ``bad_identifier`` naming ``field`` (msgspec's
        text for a ``pattern`` mismatch)."""
        known = self._known.get(value)
        if known is not None:
            return known
        if _PATTERN.search(value) is None:
            raise InvalidMessageError(
                field,
                "bad_identifier",
                f"Expected `str` matching regex {IDENTIFIER_PATTERN!r} - at `$.{field}`",
            )
        if len(self._known) >= self.limit:
            self._known.clear()
        value = self._known[value] = intern(value)
        return value

    def __len__(self) -> int:
        return len(self._known)


_PATTERN = re.compile(IDENTIFIER_PATTERN)
_CHECK = msgspec.json.Decoder(CheckRequestFields)
_ORDER_TYPES = {t.value: t for t in OrderType}
KNOWN = KnownIdentifiers()
"""The process's identifiers seen in check requests."""


def parse_check(data: bytes, max_bytes: int) -> Order:
    """Decode a ``risk.check.order`` request into an :class:`Order`.

    Raises:
        InvalidMessageError: too large, not JSON, a field missing, of the wrong type or out of
            range, an unknown side, order type or ``detail``, or a LIMIT order without a price.
    """
    return check_order(decode_check(data, max_bytes))


def decode_check(data: bytes, max_bytes: int) -> CheckRequestFields:
    """Decode a ``risk.check.order`` request (at most ``max_bytes``); :func:`check_order`
    validates the rest. Raises InvalidMessageError as :func:`parse_check`."""
    if len(data) > max_bytes:
        raise InvalidMessageError("$", "too_large", f"request of {len(data)} bytes > {max_bytes}")
    return _decode(_CHECK, data)


def check_order(m: CheckRequestFields) -> Order:
    """The :class:`Order` of a decoded request; raises InvalidMessageError as parse_check."""
    known = KNOWN
    account = None if m.account_id is None else known.check(m.account_id, "account_id")
    alias = None if m.account is None else known.check(m.account, "account")
    symbol = known.check(m.symbol, "symbol")
    strategy = None if m.strategy_id is None else known.check(m.strategy_id, "strategy_id")
    price = _price_or_none(m.price, "price")
    if m.order_type is None:
        order_type = ORDER_TYPE_MARKET if price is None else ORDER_TYPE_LIMIT
    else:
        named = _ORDER_TYPES.get(m.order_type.upper())
        if named is None:
            raise InvalidMessageError(
                "order_type",
                "out_of_range",
                f"order_type must be LIMIT or MARKET, got {m.order_type!r}",
            )
        order_type = named
        if order_type is ORDER_TYPE_MARKET:
            price = None
        elif price is None:
            raise InvalidMessageError("price", "missing_field", "a LIMIT order needs a price > 0")
    if account is None:
        account = alias
        if account is None:
            raise InvalidMessageError(
                "account_id", "missing_field", "account_id (or account) is required"
            )
    return Order(
        m.order_id,
        account,
        symbol,
        _side(m.side),
        m.quantity,
        price,
        order_type,
        strategy,
        m.reduce_only,
        m.dry_run,
        m.timestamp,
    )
