"""Compact approvals and the full reply on request (subjects.md §5.2), without a transport.

An approval's reply leaves ``post_trade_metrics`` null unless the request asks ``detail``
``full`` (its body, a batch's, one order's, or the ``Risk-Detail`` header); a denial by policy
carries its metrics whatever was asked; any other ``detail`` is ``invalid_request`` naming it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from risk_worker.adapters.check_handler import ERROR_CODE, ERROR_TEXT, CheckHandler
from risk_worker.adapters.query_handler import QueryHandler
from risk_worker.domain.policies import Policy
from risk_worker.domain.types import Metric, Operator, PolicyType
from risk_worker.errors import InvalidMessageError
from risk_worker.wire import check_request
from risk_worker.wire.detail import DETAIL_HEADER, forward_headers, header_detail, header_full
from risk_worker.wire.outbound import CheckReplyMsg
from risk_worker.wire.queries import parse_batch
from risk_worker.wire.trace import TRACEPARENT
from tests.decision_kit import ACCT, BTC, POST_TRADE, make_engine
from tests.harness import ListSink

GROSS_50K = Policy(
    "id-gross-50k", "Gross 50k", PolicyType.HARD, Metric.GROSS_EXPOSURE, Operator.LTE, 50_000.0
)
"""Denies (policy_violation) an order that takes gross exposure over 50,000 quote."""
REPLY_FIELDS = set(CheckReplyMsg.__struct_fields__)
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def request(order_id: str = "o1", quantity: float = 1.0, **extra: Any) -> dict[str, Any]:
    """A limit BUY of ``quantity`` BTC at 1,000 on the test account."""
    body = {"order_id": order_id, "account_id": ACCT, "symbol": BTC, "side": "BUY"}
    return {**body, "quantity": quantity, "price": 1_000.0, **extra}


def checks() -> CheckHandler:
    """A handler over 100,000 quote of balance, the post-trade built-ins and a 50k gross cap."""
    engine = make_engine(balance=100_000.0, mark=1_000.0, policies=[*POST_TRADE, GROSS_50K])
    return CheckHandler(engine, lambda: True, "w1", 65_536, ListSink())


def answer(
    body: dict[str, Any], detail: str | None = None, h: CheckHandler | None = None
) -> tuple[dict[str, Any], dict[str, str] | None, int]:
    """(reply, reply headers, reply size in bytes) of one check."""
    a = (h or checks()).answer(msgspec.json.encode(body), detail=detail)
    return msgspec.json.decode(a.payload), a.headers, len(a.payload)


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("detail", ["full", "compact"])
def test_decode_check_when_detail_full_or_compact_then_kept(detail: str) -> None:
    m = check_request.decode_check(msgspec.json.encode(request(detail=detail)), 65_536)
    assert m.detail == detail


def test_decode_check_when_detail_absent_then_compact_and_order_unchanged() -> None:
    data = msgspec.json.encode(request())
    m = check_request.decode_check(data, 65_536)
    assert m.detail == "compact"
    assert check_request.check_order(m) == check_request.parse_check(data, 65_536)


@pytest.mark.parametrize("detail", ["FULL", "verbose", "", 1, True, None, ["full"]])
def test_decode_check_when_detail_anything_else_then_invalid_naming_detail(detail: object) -> None:
    with pytest.raises(InvalidMessageError) as info:
        check_request.parse_check(msgspec.json.encode(request(detail=detail)), 65_536)
    assert info.value.field == "detail"


def test_header_detail_and_header_full() -> None:
    assert header_detail(None) is None and header_detail({}) is None
    assert header_detail({TRACEPARENT: TP}) is None
    assert header_detail({DETAIL_HEADER: "full"}) == "full"
    assert header_full(None) is False
    assert header_full("compact") is False
    assert header_full("full") is True
    for bad in ("Full", "", "full ", "x" * 500):
        with pytest.raises(InvalidMessageError) as info:
            header_full(bad)
        assert info.value.field == DETAIL_HEADER and len(str(info.value)) < 200


def test_forward_headers_when_forwarded_then_keep_trace_detail_and_the_batch_mark() -> None:
    assert forward_headers(None, None) is None
    assert forward_headers(TP, None) == {TRACEPARENT: TP}
    assert forward_headers(None, "full") == {DETAIL_HEADER: "full"}
    assert forward_headers(TP, "full", {"Risk-Batch": "1"}) == {
        "Risk-Batch": "1",
        TRACEPARENT: TP,
        DETAIL_HEADER: "full",
    }


# -- single checks ----------------------------------------------------------------------------


def test_answer_when_plain_approval_then_compact_with_every_field() -> None:
    reply, headers, size = answer(request())
    assert set(reply) == REPLY_FIELDS  # every field of the contract, none dropped
    assert reply["approved"] is True and reply["rejection_reason"] is None
    assert reply["order_id"] == "o1" and reply["account_id"] == ACCT
    assert reply["reason"] == "approved" and reply["risk_level"] == "LOW"
    assert reply["worker_id"] == "w1" and reply["processing_time_us"] >= 0
    assert reply["violations"] == [] and reply["warnings"] == []
    assert reply["post_trade_metrics"] is None and reply["duplicate"] is False
    assert headers is None
    assert size < 300


@pytest.mark.parametrize(
    ("body_detail", "header"),
    [("full", None), (None, "full"), ("full", "compact"), ("compact", "full")],
)
def test_answer_when_full_asked_in_body_or_header_then_post_trade_metrics(
    body_detail: str | None, header: str | None
) -> None:
    extra = {} if body_detail is None else {"detail": body_detail}
    reply, headers, size = answer(request(**extra), detail=header)
    assert reply["approved"] is True
    m = reply["post_trade_metrics"]
    assert m["account_id"] == ACCT and m["gross_exposure"] == pytest.approx(1_000.0)
    assert m["pending_orders"] == 0 and m["worker_id"] == "w1"  # no other reservation
    assert "Gross 50k" in m["limit_utilization"]
    assert headers is None
    assert size > 600


def test_answer_when_compact_asked_both_ways_then_compact() -> None:
    reply, _, _ = answer(request(detail="compact"), detail="compact")
    assert reply["approved"] is True and reply["post_trade_metrics"] is None


def test_answer_when_approved_with_warning_then_compact_keeps_the_warning() -> None:
    soft = Policy("id-soft", "Soft Gross", PolicyType.SOFT, Metric.GROSS_EXPOSURE, Operator.LTE, 1)
    engine = make_engine(balance=100_000.0, mark=1_000.0, policies=[soft])
    h = CheckHandler(engine, lambda: True, "w1", 65_536, ListSink())
    reply, _, _ = answer(request(), h=h)
    assert reply["approved"] is True and reply["post_trade_metrics"] is None
    assert [w["policy_name"] for w in reply["warnings"]] == ["Soft Gross"]
    assert reply["reason"].startswith("approved with warning: Soft Gross")


@pytest.mark.parametrize("detail", [None, "compact", "full"])
def test_answer_when_denied_by_policy_then_metrics_whatever_was_asked(detail: str | None) -> None:
    extra = {} if detail is None else {"detail": detail}
    reply, _, _ = answer(request(quantity=60.0, **extra))
    assert reply["approved"] is False and reply["rejection_reason"] == "policy_violation"
    assert reply["violations"][0]["policy_name"] == "Gross 50k"
    assert reply["post_trade_metrics"]["gross_exposure"] == pytest.approx(60_000.0)


def test_answer_when_denied_without_simulation_then_no_metrics_even_if_full_asked() -> None:
    reply, _, _ = answer({**request(detail="full"), "account_id": "nobody"})
    assert reply["rejection_reason"] == "unknown_account"
    assert reply["post_trade_metrics"] is None


def test_answer_when_detail_field_invalid_then_invalid_request_naming_it() -> None:
    reply, headers, _ = answer(request(detail="verbose"))
    assert reply["approved"] is False and reply["rejection_reason"] == "invalid_request"
    assert reply["order_id"] == "o1" and reply["account_id"] == ACCT
    assert headers is not None and headers[ERROR_CODE] == "400"
    assert headers[ERROR_TEXT].startswith("detail: ")


def test_answer_when_detail_header_invalid_then_invalid_request_and_nothing_reserved() -> None:
    h = checks()
    reply, headers, _ = answer(request(), detail="everything", h=h)
    assert reply["rejection_reason"] == "invalid_request"
    assert reply["reason"].startswith(f"invalid request: {DETAIL_HEADER}: ")
    assert headers is not None and headers[ERROR_TEXT].startswith(f"{DETAIL_HEADER}: ")
    assert h.answer(msgspec.json.encode(request("o2", detail="full"))).decision is not None
    again = msgspec.json.decode(h.answer(msgspec.json.encode(request("o3", detail="full"))).payload)
    assert again["post_trade_metrics"]["pending_orders"] == 1  # o2's: o1 reserved nothing


# -- batches ----------------------------------------------------------------------------------


def batch(
    orders: list[dict[str, Any]], header: str | None = None, **extra: Any
) -> tuple[dict[str, Any], dict[str, str] | None]:
    """(reply, reply headers) of one batch; ``header``: its ``Risk-Detail``."""
    engine = make_engine(balance=100_000.0, mark=1_000.0, policies=[*POST_TRADE, GROSS_50K])
    h = CheckHandler(engine, lambda: True, "w1", 65_536, ListSink())
    queries = QueryHandler(engine, lambda: True, h, 100)
    a = queries.batch(msgspec.json.encode({"orders": orders, **extra}), detail=header)
    return msgspec.json.decode(a.payload), a.headers


def metrics_of(body: dict[str, Any]) -> list[bool]:
    """Which decisions of a batch reply carry post-trade metrics."""
    return [d["post_trade_metrics"] is not None for d in body["decisions"]]


def test_batch_when_plain_then_every_approval_compact() -> None:
    body, headers = batch([request("o1"), request("o2")])
    assert [d["approved"] for d in body["decisions"]] == [True, True]
    assert metrics_of(body) == [False, False]
    assert headers is None


@pytest.mark.parametrize(("field", "header"), [("full", None), (None, "full")])
def test_batch_when_full_asked_for_the_batch_then_every_approval_full(
    field: str | None, header: str | None
) -> None:
    extra = {} if field is None else {"detail": field}
    body, _ = batch([request("o1"), request("o2")], header, **extra)
    assert metrics_of(body) == [True, True]
    assert body["decisions"][1]["post_trade_metrics"]["pending_orders"] == 1  # o1's


def test_batch_when_one_order_asks_full_then_only_that_one() -> None:
    body, _ = batch([request("o1"), request("o2", detail="full"), request("o3")])
    assert metrics_of(body) == [False, True, False]


def test_batch_when_an_order_denied_by_policy_then_it_carries_metrics_the_others_not() -> None:
    body, _ = batch([request("o1", 10.0), request("o2", 60.0), request("o3", 1.0)])
    assert [d["rejection_reason"] for d in body["decisions"]] == [None, "policy_violation", None]
    assert metrics_of(body) == [False, True, False]


@pytest.mark.parametrize(
    ("orders", "extra", "header", "field"),
    [
        ([request("o1")], {"detail": "all"}, None, "detail"),
        ([request("o1"), request("o2", detail="yes")], {}, None, "orders[1].detail"),
        ([request("o1")], {}, "FULL", DETAIL_HEADER),
    ],
)
def test_batch_when_detail_invalid_then_400_naming_the_field(
    orders: list[dict[str, Any]], extra: dict[str, Any], header: str | None, field: str
) -> None:
    body, headers = batch(orders, header, **extra)
    assert headers is not None and headers[ERROR_CODE] == "400"
    assert body["error"] == "invalid_request" and body["field"] == field


def test_parse_batch_when_detail_mixed_then_full_per_order() -> None:
    data = msgspec.json.encode({"orders": [request("o1"), request("o2", detail="full")]})
    parsed = parse_batch(data, 65_536, 100)
    assert parsed.full == [False, True] and parsed.all_or_none is False
    assert parse_batch(data, 65_536, 100, "full").full == [True, True]
