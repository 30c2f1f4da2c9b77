"""Every inbound number is bounded, the tick's subject names its symbol, deep JSON is invalid.

Issue 10 items 5-7: a wild value is refused by the wire layer with the field it names; a value
the bounds let through (price 1e9) is left to the suspect-tick filter (test_domain_marks.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from risk_worker.errors import InvalidMessageError
from risk_worker.wire import check_request, inbound, ticks

NOW = 1_700_000_000_000
MAX_BYTES = 65_536
NESTED = (
    b'{"x":' + b"[" * 1000 + b"]" * 1000
    + b',"order_id":"o","account_id":"A","symbol":"S","side":"BUY","quantity":1}'
)  # fmt: skip

POSITION = {"account_id": "a", "symbol": "ETHUSDT", "quantity": 1.0, "entry_price": 3_000.0}
FILL = {
    "fill_id": "f",
    "order_id": "o",
    "account_id": "a",
    "symbol": "ETHUSDT",
    "side": "BUY",
    "quantity": 1.0,
    "price": 3_000.0,
    "fee": 1.0,
}
PNL = {"account_id": "a", "balance": 100_000.0}
CHECK = {"order_id": "o", "account_id": "a", "symbol": "ETHUSDT", "side": "BUY", "quantity": 1.0}
RESERVATION = {
    "worker_id": "w",
    "account_id": "a",
    "order_id": "o",
    "symbol": "ETHUSDT",
    "signed_qty": 1.0,
    "increasing_qty": 1.0,
    "price": 3_000.0,
    "margin_rate": 0.1,
    "expires_ms": NOW,
}

PARSERS: dict[str, tuple[dict[str, Any], Callable[[bytes], object]]] = {
    "position": ({**POSITION, "timestamp": NOW}, inbound.parse_position),
    "fill": ({**FILL, "timestamp": NOW}, inbound.parse_fill),
    "pnl": ({**PNL, "timestamp": NOW}, inbound.parse_pnl),
    "tick": ({"price": 3_000.0}, lambda d: ticks.parse_tick(d, "market.tick.ETHUSDT")),
    "check": (CHECK, lambda d: check_request.parse_check(d, MAX_BYTES)),
    "reservation": (RESERVATION, inbound.parse_reservation),
}


def encode(kind: str, **changes: Any) -> bytes:
    return msgspec.json.encode({**PARSERS[kind][0], **changes})


OUT_OF_BOUNDS = [
    ("tick", {"price": 1e308}, "price"),
    ("tick", {"price": 5e-324}, "price"),
    ("tick", {"price": 1e13}, "price"),
    ("tick", {"price": None, "bid": 1e308, "ask": 1e308}, "bid"),
    ("tick", {"timestamp": 10**16}, "timestamp"),
    ("pnl", {"balance": 1e308}, "balance"),
    ("pnl", {"balance": -1e308}, "balance"),
    ("pnl", {"balance": None, "equity": 2e15}, "equity"),
    ("pnl", {"realized_pnl": -1e16}, "realized_pnl"),
    ("pnl", {"unrealized_pnl": 1e300}, "unrealized_pnl"),
    ("fill", {"fee": -1e308}, "fee"),
    ("fill", {"price": 5e-324}, "price"),
    ("fill", {"quantity": 1e13}, "quantity"),
    ("fill", {"timestamp": 2**62}, "timestamp"),
    ("position", {"quantity": -1e13}, "quantity"),
    ("position", {"entry_price": 1e13}, "entry_price"),
    ("position", {"entry_price": 5e-324}, "entry_price"),
    ("check", {"quantity": 1e13}, "quantity"),
    ("check", {"price": 1e13}, "price"),
    ("check", {"price": 5e-324}, "price"),
    ("reservation", {"signed_qty": 1e300}, "signed_qty"),
    ("reservation", {"price": 1e300}, "price"),
    ("reservation", {"margin_rate": 2.0}, "margin_rate"),
]


@pytest.mark.parametrize(
    ("kind", "changes", "field"),
    OUT_OF_BOUNDS,
    ids=[f"{k}-{f}-{next(iter(c.values()))}" for k, c, f in OUT_OF_BOUNDS],
)
def test_parse_when_number_out_of_bounds_then_out_of_range_naming_the_field(
    kind: str, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        PARSERS[kind][1](encode(kind, **changes))
    assert (caught.value.field, caught.value.reason) == (field, "out_of_range")


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        ("tick", {"price": 1e12}),
        ("tick", {"price": 1e-12}),
        ("tick", {"price": 1e9}),  # bounded: the suspect-tick filter deals with it
        ("pnl", {"balance": -1e15}),
        ("fill", {"fee": -1e15}),
        ("position", {"quantity": 0.0, "entry_price": 0.0}),
        ("check", {"price": 0.0}),  # a market order
    ],
)
def test_parse_when_number_at_a_bound_then_accepted(kind: str, changes: dict[str, Any]) -> None:
    PARSERS[kind][1](encode(kind, **changes))


def test_parse_tick_when_bid_and_ask_at_the_top_then_mid_finite() -> None:
    _, mid, _ = ticks.parse_tick(b'{"bid": 1e12, "ask": 1e12}', "market.tick.ETHUSDT")
    assert mid == 1e12


def test_parse_tick_when_body_symbol_differs_from_subject_then_invalid() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        ticks.parse_tick(b'{"symbol": "BTCUSDT", "price": 1.0}', "market.tick.ETHUSDT")
    assert caught.value.field == "symbol"
    assert "ETHUSDT" in str(caught.value)


def test_parse_tick_when_body_symbol_equals_subject_then_the_subject_symbol() -> None:
    symbol, price, _ = ticks.parse_tick(
        b'{"symbol": "ETHUSDT", "price": 2.0}', "market.tick.ETHUSDT"
    )
    assert (symbol, price) == ("ETHUSDT", 2.0)


def test_parse_tick_when_subject_token_bad_then_invalid_even_with_a_body_symbol() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        ticks.parse_tick(b'{"symbol": "ETHUSDT", "price": 2.0}', "market.tick.ETH*")
    assert caught.value.reason == "bad_identifier"


@pytest.mark.parametrize("kind", sorted(PARSERS))
def test_parse_when_json_nested_1000_deep_then_malformed_json(kind: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        PARSERS[kind][1](NESTED)
    assert (caught.value.field, caught.value.reason) == ("$", "malformed_json")
