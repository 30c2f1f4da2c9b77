"""PendingBook's symbol index and earliest expiry against a scan of every reservation: after
random adds (a re-check under the same id on another symbol included), discards, expiries,
releases and fills, every symbol's sides and counts are what walking all the reservations finds,
and an expiry drops exactly the lapsed ones."""

from __future__ import annotations

import random

import pytest

from risk_worker.domain.pending import PendingBook, PendingOrder, SymbolPending

SYMBOLS = ("BTC", "ETH", "SOL", "XRP")
STRATEGIES = (None, "s1", "s2")


def scanned(book: PendingBook, symbol: str, exclude: str | None) -> SymbolPending:
    """The sides of ``symbol`` by walking every reservation (the former implementation)."""
    sides = SymbolPending()
    for o in book._orders.values():
        if o.symbol == symbol and o.order_id != exclude:
            sides.add(o)
    return sides


@pytest.mark.parametrize("seed", range(30))
def test_sides_and_counts_when_random_operations_then_equal_to_a_full_scan(seed: int) -> None:
    rng = random.Random(seed)
    book = PendingBook()
    now = 0
    for step in range(400):
        now += rng.randrange(0, 50)
        action = rng.random()
        oid = f"o{rng.randrange(40)}"
        if action < 0.5:
            qty = rng.choice((-1.0, 1.0)) * rng.uniform(0.1, 5.0)
            order = PendingOrder(
                oid, rng.choice(SYMBOLS), qty, abs(qty), rng.uniform(1.0, 100.0), 0.1,
                now + rng.randrange(1, 500), rng.choice(STRATEGIES),
            )  # fmt: skip
            book.add(order)
        elif action < 0.6:
            book.discard(oid)
        elif action < 0.75:
            lapsed = sum(o.expires_ms <= now for o in book._orders.values())
            assert book.expire(now) == lapsed
            assert all(o.expires_ms > now for o in book._orders.values())
        elif action < 0.8:
            book.release(rng.choice((None, *SYMBOLS)), rng.choice(STRATEGIES))
        else:
            book.consume(oid, rng.uniform(0.0, 3.0))
        for symbol in SYMBOLS:
            exclude = rng.choice((None, oid))
            got, want = book.sides(symbol, exclude), scanned(book, symbol, exclude)
            assert (got.buy_qty, got.sell_qty, got.price) == pytest.approx(
                (want.buy_qty, want.sell_qty, want.price)
            ), (step, symbol)
            total, on_symbol, of_strategy = book.counts(symbol, "s1")
            orders = list(book._orders.values())
            assert total == len(orders)
            assert on_symbol == sum(o.symbol == symbol for o in orders)
            assert of_strategy == sum(o.strategy_id == "s1" for o in orders)
