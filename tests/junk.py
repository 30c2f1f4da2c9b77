"""Hypothesis strategies for hostile input: junk JSON, wild numbers, deep nesting, wrong types.

Each inbound message type has a well-formed template; the strategies mutate it (a field set to a
wild number, a string, null, a list, a nested object or deleted; unknown fields added), replace
it with arbitrary JSON or bytes, or wrap it in nesting deeper than the decoder's recursion
limit. Shared by the in-process and the over-NATS property tests of issue 10.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

ACCOUNT = "ACC1"
SYMBOL = "BTCUSDT"
MARK = 50_000.0
BALANCE = 100_000.0

WILD_NUMBERS: list[Any] = [
    1e308,
    -1e308,
    5e-324,
    -5e-324,
    0.0,
    -0.0,
    1e9,
    1e15,
    1e16,
    1e300,
    2**63,
    -(2**63),
    2**64,
    10**30,
    -1,
    0.1,
    float("nan"),
    float("inf"),
    float("-inf"),
]
"""Numbers a broken feed or an attacker sends; NaN/Infinity encode as non-JSON literals."""

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
"""Arbitrary JSON-like values (floats include NaN and infinities)."""

field_values = (
    st.sampled_from(WILD_NUMBERS)
    | st.floats()
    | st.integers()
    | st.text(max_size=80)
    | st.none()
    | st.booleans()
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)
    | st.sampled_from(["BUY", "sell", "SHORT", "", "$KV.x", "a.b", "*", ">", "BTC USDT", "x" * 70])
)
"""What a single field may be replaced with."""


def templates(now_ms: int) -> dict[str, dict[str, Any]]:
    """A well-formed message of every inbound type (subject → body)."""
    return {
        "risk.check.order": {
            "order_id": "o-1",
            "account_id": ACCOUNT,
            "symbol": SYMBOL,
            "side": "BUY",
            "quantity": 0.1,
            "price": MARK,
            "timestamp": now_ms,
        },
        "positions.update": {
            "account_id": ACCOUNT,
            "symbol": SYMBOL,
            "quantity": 1.0,
            "entry_price": MARK,
            "timestamp": now_ms,
        },
        "fills.confirmed": {
            "fill_id": "f-1",
            "order_id": "o-1",
            "account_id": ACCOUNT,
            "symbol": SYMBOL,
            "side": "BUY",
            "quantity": 0.1,
            "price": MARK,
            "fee": 1.0,
            "timestamp": now_ms,
        },
        "pnl.update": {"account_id": ACCOUNT, "balance": BALANCE, "timestamp": now_ms},
        f"market.tick.{SYMBOL}": {"symbol": SYMBOL, "price": MARK, "timestamp": now_ms},
    }


def encode(value: Any) -> bytes:
    """JSON text of ``value``; NaN and infinities become the (invalid) ``NaN``/``Infinity``."""
    return json.dumps(value, allow_nan=True).encode()


def deeply_nested(body: dict[str, Any], depth: int) -> bytes:
    """``body`` with an extra field nested ``depth`` arrays deep placed before its fields."""
    inner = encode(body)[1:]
    return b'{"x":' + b"[" * depth + b"]" * depth + b"," + inner


@st.composite
def mutated(draw: st.DrawFn, template: dict[str, Any]) -> bytes:
    """The template with some fields replaced, deleted or added."""
    body = dict(template)
    for key in draw(st.lists(st.sampled_from(sorted(template)), max_size=3, unique=True)):
        if draw(st.booleans()):
            body[key] = draw(field_values)
        else:
            del body[key]
    for extra in draw(st.lists(st.text(max_size=6), max_size=2)):
        body[extra] = draw(field_values)
    return encode(body)


def payloads(template: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Hostile payloads for a subject whose well-formed body is ``template``."""
    return st.one_of(
        mutated(template),
        json_values.map(encode),
        st.binary(max_size=64),
        st.integers(min_value=900, max_value=3000).map(lambda d: deeply_nested(template, d)),
        st.just(encode(template)[:-3]),
    )
