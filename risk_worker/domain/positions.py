"""Position keeping: open, increase, reduce, close and flip, with realized PnL.

Quantities are in base units and signed (negative = short); prices and PnL in quote currency.
"""

from __future__ import annotations

from typing import Final

_EPSILON: Final = 1e-12
"""Relative tolerance under which a remaining quantity counts as flat (float residue)."""


class Position:
    """One symbol's position in one account.

    Attributes:
        symbol: instrument, e.g. ``BTCUSDT``.
        quantity: signed base quantity; negative = short, 0 = flat.
        entry_price: quantity-weighted average entry price (quote per base unit); 0 when flat.
        snapshot_ms: timestamp of the last ``positions.update`` (ms since epoch), or 0.
        updated_ms: timestamp of the last change, by snapshot or by fill (ms since epoch).
    """

    __slots__ = ("entry_price", "quantity", "snapshot_ms", "symbol", "updated_ms")

    def __init__(
        self,
        symbol: str,
        quantity: float = 0.0,
        entry_price: float = 0.0,
        snapshot_ms: int = 0,
        updated_ms: int = 0,
    ) -> None:
        self.symbol = symbol
        self.quantity = quantity
        self.entry_price = entry_price
        self.snapshot_ms = snapshot_ms
        self.updated_ms = updated_ms

    def __repr__(self) -> str:
        return f"Position({self.symbol!r}, qty={self.quantity}, entry={self.entry_price})"


def fill_effect(
    quantity: float, entry_price: float, fill_qty: float, price: float
) -> tuple[float, float, float]:
    """Apply a signed fill to a signed position (standard average-cost position keeping).

    - Open or increase (same sign or flat): entry = (|q|·entry + |f|·price) / |q + f|.
    - Reduce or close (opposite sign, |f| ≤ |q|): realized = |f| · (price − entry) · sign(q);
      the entry price is unchanged (0 when flat).
    - Flip (opposite sign, |f| > |q|): the whole position is closed at ``price`` (realized as
      above on |q|), and the remainder opens at ``price``.

    Args:
        quantity: current signed base quantity.
        entry_price: current average entry price (quote).
        fill_qty: signed base quantity of the fill (BUY positive, SELL negative), non-zero.
        price: fill price (quote per base unit), > 0.

    Returns:
        (the new signed quantity, the new entry price, the realized PnL of this fill (quote,
        before fees)): a plain tuple, which the compiled core keeps unboxed.
    """
    new_qty = quantity + fill_qty
    held = abs(quantity)
    filled = abs(fill_qty)
    if abs(new_qty) <= _EPSILON * (filled if filled > held else held):  # max(held, filled)
        new_qty = 0.0
    if quantity == 0.0 or (quantity > 0.0) == (fill_qty > 0.0):
        entry = (held * entry_price + filled * price) / abs(new_qty)
        return new_qty, entry, 0.0
    direction = 1.0 if quantity > 0.0 else -1.0
    closed = held if held < filled else filled  # min(filled, held)
    realized = closed * (price - entry_price) * direction
    if new_qty == 0.0:
        return 0.0, 0.0, realized
    if (new_qty > 0.0) == (quantity > 0.0):
        return new_qty, entry_price, realized
    return new_qty, price, realized


def strictly_reduces(quantity: float, order_qty: float) -> bool:
    """True when a signed order shrinks |position| without flipping it (closing counts).

    Args:
        quantity: current signed position quantity (base).
        order_qty: signed order quantity (BUY positive, SELL negative), non-zero.
    """
    if quantity == 0.0 or order_qty == 0.0 or (quantity > 0.0) == (order_qty > 0.0):
        return False
    return abs(order_qty) <= abs(quantity) * (1.0 + _EPSILON)


def risk_increasing_quantity(quantity: float, order_qty: float) -> float:
    """Base quantity of an order that opens or adds exposure (the flipped remainder counts).

    Args:
        quantity: signed position quantity the order acts on (base).
        order_qty: signed order quantity (base).

    Returns:
        |order| when it adds or opens; max(0, |order| − |position|) when it is opposite.
    """
    if quantity == 0.0 or (quantity > 0.0) == (order_qty > 0.0):
        return abs(order_qty)
    return max(0.0, abs(order_qty) - abs(quantity))
