"""Bad input changes nothing: invalid requests get ``invalid_request``, bad events are dropped."""

from __future__ import annotations

import msgspec
import pytest

from tests.harness import Harness, now_ms
from tests.integration.conftest import HarnessFactory

GOOD = {
    "order_id": "o-1",
    "account_id": "ACC-MAL",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "quantity": 1.0,
    "price": 50_000.0,
}


def with_(**changes: object) -> bytes:
    body = {**GOOD, **changes}
    return msgspec.json.encode({k: v for k, v in body.items() if v is not ...})


NESTED = (
    b'{"x":' + b"[" * 1000 + b"]" * 1000
    + b',"order_id":"o","account_id":"A","symbol":"S","side":"BUY","quantity":1}'
)  # fmt: skip
"""Issue 10 item 7: JSON nested 1,000 deep (msgspec raises RecursionError on it)."""

MALFORMED = [
    ("not_json", b"this is not json", "$"),
    ("truncated_json", b'{"order_id": "o-1", "account_id": ', "$"),
    ("array", b"[1, 2, 3]", "$"),
    ("empty", b"", "$"),
    ("quantity_string", with_(quantity="1"), "quantity"),
    ("price_string", with_(price="50000"), "price"),
    ("dry_run_string", with_(dry_run="yes"), "dry_run"),
    ("missing_order_id", with_(order_id=...), "order_id"),
    ("missing_account", with_(account_id=...), "account_id"),
    ("missing_symbol", with_(symbol=...), "symbol"),
    ("missing_side", with_(side=...), "side"),
    ("missing_quantity", with_(quantity=...), "quantity"),
    ("nan_literal", with_(quantity=1.0).replace(b"1.0", b"NaN"), "$"),
    ("infinity_literal", with_(quantity=1.0).replace(b"1.0", b"Infinity"), "$"),
    ("huge_number", with_(quantity=1.0).replace(b"1.0", b"1e999"), "quantity"),
    ("negative_quantity", with_(quantity=-1.0), "quantity"),
    ("zero_quantity", with_(quantity=0), "quantity"),
    ("negative_price", with_(price=-5.0), "price"),
    ("unknown_side", with_(side="HOLD"), "side"),
    ("unknown_order_type", with_(order_type="STOP"), "order_type"),
    ("limit_without_price", with_(order_type="LIMIT", price=None), "price"),
    ("bad_account_identifier", with_(account_id="acc.with.dots"), "account_id"),
    ("bad_symbol_identifier", with_(symbol="BTC USDT"), "symbol"),
    ("wildcard_symbol", with_(symbol="BTC>"), "symbol"),
    ("too_long_identifier", with_(account_id="A" * 65), "account_id"),
    ("newline_in_identifier", with_(account_id="ACC\n"), "account_id"),
    ("bad_strategy_identifier", with_(strategy_id="s*"), "strategy_id"),
    ("one_megabyte_body", with_(order_id="o-1", padding="x" * 1_000_000), "$"),
    ("nested_1000_deep", NESTED, "$"),
]


@pytest.mark.parametrize(("case", "data", "field"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_check_when_request_malformed_then_invalid_request_naming_field(
    harness: Harness, case: str, data: bytes, field: str
) -> None:
    reply = await harness.request(data)
    body = msgspec.json.decode(reply.data)
    assert body["approved"] is False
    assert body["rejection_reason"] == "invalid_request"
    assert body["risk_level"] == "HIGH"
    assert reply.headers is not None
    assert reply.headers["Nats-Service-Error-Code"] == "400"
    assert reply.headers["Nats-Service-Error"]
    if field != "$":
        assert field in body["reason"], body["reason"]
    # ... and the worker keeps serving:
    await harness.pnl("ACC-MAL", 100_000.0)
    await harness.settle()
    follow_up = msgspec.json.decode((await harness.request(with_(dry_run=True))).data)
    assert follow_up["approved"] is True


async def test_check_when_ids_readable_then_echoed_in_invalid_reply(harness: Harness) -> None:
    reply = msgspec.json.decode((await harness.request(with_(quantity="x"))).data)
    assert (reply["order_id"], reply["account_id"]) == ("o-1", "ACC-MAL")


BAD_EVENTS = [
    ("pnl.update", b"{not json"),
    ("pnl.update", msgspec.json.encode({"account_id": "ACC-EV", "timestamp": 1})),  # no balance
    ("pnl.update", msgspec.json.encode({"account_id": "ACC EV", "balance": 1.0, "timestamp": 1})),
    (
        "positions.update",
        msgspec.json.encode(
            {"account_id": "ACC-EV", "symbol": "BTCUSDT", "quantity": 1.0, "timestamp": 1}
        ),
    ),  # no entry
    (
        "positions.update",
        msgspec.json.encode(
            {
                "account_id": "ACC-EV",
                "symbol": "BTCUSDT",
                "quantity": "1",
                "entry_price": 1.0,
                "timestamp": 1,
            }
        ),
    ),
    (
        "fills.confirmed",
        msgspec.json.encode(
            {
                "fill_id": "f",
                "order_id": "o",
                "account_id": "ACC-EV",
                "symbol": "BTCUSDT",
                "side": "HOLD",
                "quantity": 1.0,
                "price": 1.0,
                "timestamp": 1,
            }
        ),
    ),
    (
        "fills.confirmed",
        msgspec.json.encode(
            {
                "fill_id": "f",
                "order_id": "o",
                "account_id": "ACC-EV",
                "symbol": "BTCUSDT",
                "side": "BUY",
                "quantity": 1.0,
                "price": -1.0,
                "timestamp": 1,
            }
        ),
    ),
    ("market.tick.BTCUSDT", msgspec.json.encode({"price": -3.0})),
    ("market.tick.BTCUSDT", b'{"price": 1e999}'),
    ("market.tick.BTCUSDT", msgspec.json.encode({"bid": 1.0})),  # no ask, no price
]


async def test_events_when_malformed_then_dropped_counted_and_book_untouched(
    harness: Harness,
) -> None:
    for subject, data in BAD_EVENTS:
        await harness.publish(subject, data)
    await harness.settle()
    invalid = "risk_events_invalid_total"
    assert harness.metric(invalid) == len(BAD_EVENTS)
    assert harness.metric(invalid, kind="pnl.update", reason="malformed_json") == 1
    assert harness.metric(invalid, kind="market.tick", reason="non_finite") == 1
    engine = harness.worker.engine
    assert "ACC-EV" not in engine.known_accounts()
    assert "BTCUSDT" not in engine.book.marks or engine.book.marks["BTCUSDT"].price > 0
    # a good event right after is applied
    await harness.pnl("ACC-EV", 5_000.0, ts=now_ms())
    await harness.settle()
    assert engine.book.accounts["ACC-EV"].balance == 5_000.0


async def test_check_when_nested_1000_deep_without_services_protocol_then_invalid_request(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(services_protocol=False)
    reply = await h.request(NESTED)
    body = msgspec.json.decode(reply.data)
    assert body["rejection_reason"] == "invalid_request", body
    assert reply.headers is not None
    assert reply.headers["Nats-Service-Error-Code"] == "400"


async def test_events_when_nested_1000_deep_then_dropped_counted_as_malformed_json(
    harness: Harness,
) -> None:
    subjects = [
        "positions.update",
        "fills.confirmed",
        "pnl.update",
        "market.tick.BTCUSDT",
        "risk.reservations",
    ]
    for subject in subjects:
        await harness.publish(subject, NESTED)
    await harness.settle()
    invalid = "risk_events_invalid_total"
    assert harness.metric(invalid, reason="malformed_json") == len(subjects)
    for kind in ("positions.update", "fills.confirmed", "pnl.update", "market.tick"):
        assert harness.metric(invalid, kind=kind, reason="malformed_json") == 1, kind
