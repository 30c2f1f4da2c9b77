"""The client's fail-closed decoding: approved only on a decodable ``"approved": true``."""

from __future__ import annotations

import msgspec

from risk_worker.client import BAD_REPLY, SERVICE_ERROR, CheckOrder
from risk_worker.client.decision import ERROR_CODE, ERROR_TEXT, decode_batch, decode_check

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
REPLY = {
    "order_id": "o1",
    "account_id": "A",
    "approved": True,
    "rejection_reason": None,
    "reason": "approved",
    "risk_level": "LOW",
    "violations": [],
    "warnings": [],
    "post_trade_metrics": None,
    "processing_time_us": 12,
    "worker_id": "w1",
}


def encode(**changes: object) -> bytes:
    body = {**REPLY, **changes}
    return msgspec.json.encode({k: v for k, v in body.items() if v is not ...})


def test_decode_check_when_approved_then_approved_with_the_reply_fields() -> None:
    d = decode_check(encode(), {"traceparent": TP}, "o1", "A")
    assert d.approved and d.rejection_reason is None and not d.client_side
    assert (d.worker_id, d.processing_time_us, d.risk_level, d.traceparent) == ("w1", 12, "LOW", TP)


def test_decode_check_when_approved_lacking_or_not_a_bool_then_bad_reply() -> None:
    for data in (encode(approved=...), encode(approved="true"), encode(approved=1), b"{", b""):
        d = decode_check(data, None, "o1", "A")
        assert not d.approved and d.rejection_reason == BAD_REPLY and d.client_side, data
        assert d.order_id == "o1" and d.account_id == "A"


def test_decode_check_when_approval_contradicts_itself_then_bad_reply() -> None:
    other_order = decode_check(encode(order_id="o2"), None, "o1", "A")
    with_reason = decode_check(encode(rejection_reason="policy_violation"), None, "o1", "A")
    no_reason = decode_check(encode(approved=False), None, "o1", "A")
    for d in (other_order, with_reason, no_reason):
        assert not d.approved and d.rejection_reason == BAD_REPLY


def test_decode_check_when_service_error_header_then_denied_with_its_code() -> None:
    invalid = encode(approved=False, rejection_reason="invalid_request", reason="invalid")
    d = decode_check(invalid, {ERROR_CODE: "400", ERROR_TEXT: "symbol: bad"}, "o1", "A")
    assert not d.approved and d.rejection_reason == "invalid_request" and d.error_code == "400"
    approved_body = decode_check(encode(), {ERROR_CODE: "500"}, "o1", "A")
    assert not approved_body.approved and approved_body.rejection_reason == SERVICE_ERROR
    empty = decode_check(b"", {ERROR_CODE: "503", ERROR_TEXT: "down"}, "o1", "A")
    assert not empty.approved and empty.rejection_reason == SERVICE_ERROR
    assert empty.error_code == "503" and not empty.client_side and "down" in empty.reason


def test_decode_batch_when_decisions_missing_or_error_then_every_order_denied() -> None:
    ids = [("o1", "A"), ("o2", "A")]
    one = msgspec.json.encode({"decisions": [REPLY], "approved": True, "worker_id": "w"})
    short = decode_batch(one, None, ids)
    assert not short.approved and short.rejection_reason == BAD_REPLY
    assert [d.rejection_reason for d in short.decisions] == [BAD_REPLY, BAD_REPLY]
    error = msgspec.json.encode({"error": "invalid_request", "message": "m", "field": "orders"})
    invalid = decode_batch(error, {ERROR_CODE: "400"}, ids)
    assert not invalid.approved and invalid.field == "orders" and invalid.error_code == "400"
    assert all(d.rejection_reason == "invalid_request" for d in invalid.decisions)
    two = [REPLY, {**REPLY, "order_id": "o2"}]
    both = decode_batch(
        msgspec.json.encode({"decisions": two, "approved": True, "worker_id": "w"}), None, ids
    )
    assert both.approved and all(d.approved for d in both.decisions)


def test_check_order_when_encoded_then_defaults_omitted_and_an_order_id_made_up() -> None:
    order = CheckOrder(account_id="A", symbol="BTCUSDT", side="BUY", quantity=1.0)
    body = msgspec.json.decode(msgspec.json.encode(order))
    assert set(body) == {"account_id", "symbol", "side", "quantity", "order_id"}
    assert len(body["order_id"]) == 32
