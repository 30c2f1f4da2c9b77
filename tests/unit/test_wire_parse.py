"""Decoding check requests: order types, prices, sides and the errors that name a field."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from risk_worker.domain.types import OrderType, Side
from risk_worker.errors import InvalidMessageError
from risk_worker.wire import check_request

MAX_BYTES = 65_536


def body(**fields: Any) -> bytes:
    req: dict[str, Any] = {
        "order_id": "o1",
        "account_id": "a1",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": 0.5,
    }
    req.update(fields)
    return msgspec.json.encode({k: v for k, v in req.items() if v is not None})


@pytest.mark.parametrize(
    ("fields", "order_type", "price"),
    [
        ({"price": 100.0}, OrderType.LIMIT, 100.0),
        ({}, OrderType.MARKET, None),
        ({"price": 0.0}, OrderType.MARKET, None),  # price 0 means a market order
        ({"order_type": "limit", "price": 100.0}, OrderType.LIMIT, 100.0),
        ({"order_type": "Market", "price": 100.0}, OrderType.MARKET, None),  # price ignored
    ],
)
def test_parse_check_when_order_type_given_or_implied_then_price_follows(fields, order_type, price):
    order = check_request.parse_check(body(**fields), MAX_BYTES)
    assert (order.order_type, order.price) == (order_type, price)


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"order_type": "STOP", "price": 1.0}, "order_type", "got 'STOP'"),
        ({"order_type": "LIMIT"}, "price", "a LIMIT order needs a price > 0"),
        ({"side": "HOLD"}, "side", "got 'HOLD'"),
    ],
)
def test_parse_check_when_type_price_or_side_invalid_then_names_the_field(fields, field, text):
    with pytest.raises(InvalidMessageError) as caught:
        check_request.parse_check(body(**fields), MAX_BYTES)
    assert caught.value.field == field
    assert text in str(caught.value)


def test_parse_check_when_side_in_lower_case_then_accepted():
    assert check_request.parse_check(body(side="sell"), MAX_BYTES).side is Side.SELL


def test_parse_check_when_too_large_then_refused_before_decoding():
    with pytest.raises(InvalidMessageError) as caught:
        check_request.parse_check(body(), 10)
    assert caught.value.reason == "too_large"
