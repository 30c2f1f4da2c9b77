"""Pending reservations: approved orders that count against the account until filled.

Without them a burst of orders could each pass against the same headroom. An approved,
non-dry-run order reserves its quantity (and records its risk-increasing notional and the margin
for it); fills with its ``order_id`` consume the reservation, and it lapses after the pending TTL.
The metrics count live reservations as the worst case of them filling, per symbol and side
(see :mod:`risk_worker.domain.metrics`).
"""

from __future__ import annotations

from typing import Final

from risk_worker.domain.types import OrderType, RiskLevel
from risk_worker.domain.vocab import (
    RISK_LEVEL_HIGH,
)

_EPSILON: Final = 1e-12


class PendingOrder:
    """One reservation.

    Attributes:
        order_id: the client's order id.
        symbol: instrument.
        signed_qty: remaining signed base quantity (BUY positive, SELL negative).
        increasing_qty: base quantity that opens or adds exposure (≤ |signed_qty| at start).
        price: valuation price (quote per base unit): the higher of the limit price and the
            mark at check time (the mark for a market order, the limit without a mark).
        margin_rate: initial margin rate of the symbol (fraction).
        expires_ms: when the reservation lapses (ms since epoch).
        strategy_id: the order's strategy, None when it named none: for ``open_orders`` by
            strategy, and a strategy's HALT releases its reservations.
        quantity: the order's quantity as checked (base units, > 0; 0.0 when unknown, e.g. a
            reservation announced by an older worker): with ``limit_price`` and
            ``order_type``, what a retry of the same ``order_id`` must repeat to be one.
        limit_price: the order's limit price (quote per base unit), None for a market order.
        order_type: ``LIMIT`` or ``MARKET`` (None when unknown).
        risk_level: the risk level of the approval (``HIGH`` when announced by another
            instance), given again to an idempotent retry.
    """

    __slots__ = (
        "expires_ms",
        "increasing_qty",
        "limit_price",
        "margin_rate",
        "order_id",
        "order_type",
        "price",
        "quantity",
        "risk_level",
        "signed_qty",
        "strategy_id",
        "symbol",
    )

    def __init__(
        self,
        order_id: str,
        symbol: str,
        signed_qty: float,
        increasing_qty: float,
        price: float,
        margin_rate: float,
        expires_ms: int,
        strategy_id: str | None = None,
        quantity: float = 0.0,
        limit_price: float | None = None,
        order_type: OrderType | None = None,
        risk_level: RiskLevel = RISK_LEVEL_HIGH,
    ) -> None:
        self.strategy_id = strategy_id
        self.quantity = quantity
        self.limit_price = limit_price
        self.order_type = order_type
        self.risk_level = risk_level
        self.order_id = order_id
        self.symbol = symbol
        self.signed_qty = signed_qty
        self.increasing_qty = increasing_qty
        self.price = price
        self.margin_rate = margin_rate
        self.expires_ms = expires_ms

    @property
    def notional(self) -> float:
        """Risk-increasing notional still reserved (quote): min(|remaining|, increasing) × price."""
        return min(abs(self.signed_qty), self.increasing_qty) * self.price

    @property
    def margin(self) -> float:
        """Margin still reserved (quote) = reserved notional × initial margin rate."""
        return self.notional * self.margin_rate


PendingTotals = tuple[int, float, float]
"""Sums over an account's live reservations: (count, reserved notional, reserved margin; quote
currency). A plain tuple: the compiled core builds it without a call."""

NO_PENDING: Final = (0, 0.0, 0.0)
"""The totals of an account without live reservations."""


class SymbolPending:  # noqa: PLW1641 (compared by value, not hashed)
    """The live reservations of one symbol, by side.

    Attributes:
        buy_qty: Σ remaining base quantity of pending BUYs (≥ 0).
        sell_qty: Σ remaining base quantity of pending SELLs, unsigned (≥ 0).
        price: the highest reservation price among them (quote per base unit); values them
            when the symbol has neither a mark nor an open position.

    A plain class (native when compiled, its fields unboxed floats): :class:`PendingBook` sums
    the reservations into one per symbol in place (:meth:`add`), where a NamedTuple was built
    anew for every reservation. Read-only once returned (``NO_SIDES`` is shared).
    """

    __slots__ = ("buy_qty", "price", "sell_qty")

    def __init__(self, buy_qty: float = 0.0, sell_qty: float = 0.0, price: float = 0.0) -> None:
        self.buy_qty = buy_qty
        self.sell_qty = sell_qty
        self.price = price

    def add(self, order: PendingOrder) -> None:
        """Count one reservation of the symbol: its remaining quantity on its side, its price
        into the highest."""
        qty = order.signed_qty
        if qty > 0.0:
            self.buy_qty += qty
        elif qty < 0.0:
            self.sell_qty -= qty
        self.price = max(self.price, order.price)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SymbolPending):
            return NotImplemented
        return (self.buy_qty, self.sell_qty, self.price) == (
            other.buy_qty,
            other.sell_qty,
            other.price,
        )

    def __repr__(self) -> str:
        return (
            f"SymbolPending(buy_qty={self.buy_qty}, sell_qty={self.sell_qty}, price={self.price})"
        )


NO_SIDES: Final = SymbolPending()
"""A symbol without live reservations (shared: never changed)."""

_NO_SYMBOLS: dict[str, SymbolPending] = {}
"""Shared, never changed: :meth:`PendingBook.exposure` of a book without reservations."""


class PendingBook:
    """An account's reservations, keyed by order id, and indexed by symbol (a check reads its
    symbol's reservations twice: :meth:`sides` then walks those alone, not the account's)."""

    __slots__ = ("_by_symbol", "_next_expiry", "_orders")

    def __init__(self) -> None:
        self._orders: dict[str, PendingOrder] = {}
        self._by_symbol: dict[str, dict[str, PendingOrder]] = {}
        """symbol → order id → reservation: the same objects as ``_orders``, kept with it."""
        self._next_expiry = 0
        """No reservation lapses before this (ms since epoch; never later than the earliest
        ``expires_ms``): :meth:`expire` does nothing before it, on every check."""

    def _drop(self, order: PendingOrder) -> None:
        """Remove ``order`` (held under its id) from both tables."""
        del self._orders[order.order_id]
        of_symbol = self._by_symbol[order.symbol]
        del of_symbol[order.order_id]
        if not of_symbol:
            del self._by_symbol[order.symbol]

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def get(self, order_id: str) -> PendingOrder | None:
        """The live reservation of ``order_id`` (None when there is none)."""
        return self._orders.get(order_id)

    def counts(self, symbol: str, strategy_id: str | None) -> tuple[int, int, int]:
        """Live reservations: (all of them, those of ``symbol``, those of ``strategy_id``;
        0 for the strategy when it is None)."""
        of_symbol = self._by_symbol.get(symbol)
        on_symbol = 0 if of_symbol is None else len(of_symbol)
        of_strategy = 0
        if strategy_id is not None:
            for o in self._orders.values():
                if o.strategy_id == strategy_id:
                    of_strategy += 1
        return len(self._orders), on_symbol, of_strategy

    def add(self, order: PendingOrder) -> None:
        """Add or replace (same order id, e.g. a re-check) a reservation."""
        held = self._orders.get(order.order_id)
        if held is not None and held.symbol != order.symbol:
            self._drop(held)
        self._orders[order.order_id] = order
        if len(self._orders) == 1 or order.expires_ms < self._next_expiry:
            self._next_expiry = order.expires_ms
        of_symbol = self._by_symbol.get(order.symbol)
        if of_symbol is None:
            of_symbol = self._by_symbol[order.symbol] = {}
        of_symbol[order.order_id] = order

    def discard(self, order_id: str) -> None:
        """Drop the reservation of ``order_id`` when there is one (a batch rolled back)."""
        held = self._orders.get(order_id)
        if held is not None:
            self._drop(held)

    def expire(self, now_ms: int) -> int:
        """Drop reservations whose TTL has passed; returns how many were dropped."""
        if not self._orders or now_ms < self._next_expiry:
            return 0
        expired = [o for o in self._orders.values() if o.expires_ms <= now_ms]
        for o in expired:
            self._drop(o)
        self._next_expiry = min((o.expires_ms for o in self._orders.values()), default=0)
        return len(expired)

    def release(self, symbol: str | None = None, strategy_id: str | None = None) -> int:
        """Drop the reservations of ``symbol`` and/or ``strategy_id`` (every one when both are
        None): a HALT of that scope cancels the working orders (subjects.md §7). Returns how
        many were dropped."""
        if not self._orders:
            return 0
        dropped = [
            o
            for o in self._orders.values()
            if (symbol is None or o.symbol == symbol)
            and (strategy_id is None or o.strategy_id == strategy_id)
        ]
        for o in dropped:
            self._drop(o)
        return len(dropped)

    def consume(self, order_id: str, fill_qty: float) -> None:
        """Consume a fill of ``fill_qty`` base units (absolute) of ``order_id``.

        The reservation shrinks by the filled quantity and is removed once fully filled.
        An unknown order id (another instance's, or already lapsed) is ignored.
        """
        order = self._orders.get(order_id)
        if order is None:
            return
        remaining = abs(order.signed_qty) - abs(fill_qty)
        if remaining <= _EPSILON * abs(order.signed_qty):
            self._drop(order)
            return
        order.signed_qty = remaining if order.signed_qty > 0 else -remaining

    def sides(self, symbol: str, exclude: str | None = None) -> SymbolPending:
        """Pending BUY and SELL quantities of ``symbol`` (without order ``exclude``)."""
        skip = None if exclude is None else self._orders.get(exclude)  # by identity below
        of_symbol = self._by_symbol.get(symbol)
        if of_symbol is None:
            return NO_SIDES
        found: SymbolPending | None = None
        for o in of_symbol.values():
            if o is skip:
                continue
            if found is None:
                found = SymbolPending()
            found.add(o)
        return NO_SIDES if found is None else found

    def of_strategy(
        self, strategy_id: str, exclude: str | None = None
    ) -> tuple[int, dict[str, SymbolPending]]:
        """The live reservations of one strategy: their count and :meth:`sides` of each of
        their symbols (without order ``exclude``)."""
        skip = None if exclude is None else self._orders.get(exclude)  # by identity below
        by_symbol: dict[str, SymbolPending] = {}
        count = 0
        for o in self._orders.values():
            if o.strategy_id != strategy_id or o is skip:
                continue
            count += 1
            sides = by_symbol.get(o.symbol)
            if sides is None:
                sides = by_symbol[o.symbol] = SymbolPending()
            sides.add(o)
        return count, by_symbol

    def exposure(
        self, exclude: str | None = None
    ) -> tuple[PendingTotals, dict[str, SymbolPending]]:
        """Count, reserved notional and reserved margin of every live reservation, and
        :meth:`sides` of every symbol, in one pass.

        ``exclude`` leaves out one order id: a re-check of an order must not count its own
        earlier reservation against itself.

        The dict of a book without reservations is a shared empty one: do not change it.
        """
        if not self._orders:
            return NO_PENDING, _NO_SYMBOLS
        skip = None if exclude is None else self._orders.get(exclude)  # by identity below
        by_symbol: dict[str, SymbolPending] = {}
        notional = margin = 0.0
        count = 0
        for order in self._orders.values():
            if order is skip:
                continue
            n = order.notional
            notional += n
            margin += n * order.margin_rate
            count += 1
            sides = by_symbol.get(order.symbol)
            if sides is None:
                sides = by_symbol[order.symbol] = SymbolPending()
            sides.add(order)
        return (count, notional, margin), by_symbol
