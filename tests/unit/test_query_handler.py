"""The query handler without a transport: the answers it must refuse to give."""

from __future__ import annotations

import msgspec

from risk_worker.adapters.check_handler import ERROR_CODE, CheckHandler
from risk_worker.adapters.query_handler import QueryHandler
from risk_worker.domain.trading_state import StateValue, account_key
from risk_worker.domain.types import TradingState
from tests.decision_kit import ACCT, make_engine
from tests.harness import ListSink


def handler(confirmed: bool, load_policies: bool = True) -> QueryHandler:
    engine = make_engine(balance=100_000.0, mark=1_000.0, load_policies=load_policies)
    engine.states.apply(account_key(ACCT), StateValue(TradingState.HALTED, "desk"), 3)
    checks = CheckHandler(engine, lambda: confirmed, "w1", 65_536, ListSink())
    return QueryHandler(engine, lambda: confirmed, checks, 100)


def test_states_when_copy_not_confirmed_then_503_and_no_states() -> None:
    answer = handler(confirmed=False).states()
    assert answer.headers is not None and answer.headers[ERROR_CODE] == "503"
    body = msgspec.json.decode(answer.payload)
    assert body["error"] == "trading_state_unknown" and "states" not in body


def test_states_when_confirmed_then_every_key_with_its_revision() -> None:
    body = msgspec.json.decode(handler(confirmed=True).states().payload)
    assert body["confirmed"] is True
    assert [(s["key"], s["state"], s["revision"]) for s in body["states"]] == [
        (account_key(ACCT), "HALTED", 3)
    ]


def test_metrics_when_no_policy_set_then_503_policies_unavailable() -> None:
    answer = handler(confirmed=True, load_policies=False).metrics(b'{"account_id": "a1"}')
    assert answer.headers is not None and answer.headers[ERROR_CODE] == "503"
    assert msgspec.json.decode(answer.payload)["error"] == "policies_unavailable"


def test_batch_when_state_unconfirmed_then_every_order_denied_and_nothing_reserved() -> None:
    h = handler(confirmed=False)
    order = {"account_id": ACCT, "symbol": "BTCUSDT", "side": "BUY", "quantity": 1, "price": 1e3}
    orders = [{**order, "order_id": f"o{i}"} for i in range(3)]
    answer = h.batch(msgspec.json.encode({"orders": orders}))
    body = msgspec.json.decode(answer.payload)
    assert [d["rejection_reason"] for d in body["decisions"]] == ["trading_state_unknown"] * 3
    assert answer.reservations == []


def test_check_and_batch_when_another_instance_owns_the_account_then_forwarded_counted() -> None:
    engine = make_engine(balance=100_000.0, mark=1_000.0)
    forwarded: list[None] = []
    checks = CheckHandler(
        engine,
        lambda: True,
        "w1",
        65_536,
        ListSink(),
        owner_of=lambda account: "w2",
        on_forwarded=lambda: forwarded.append(None),
    )
    order = {"account_id": ACCT, "symbol": "BTCUSDT", "side": "BUY", "quantity": 1, "price": 1e3}
    answer = checks.answer(msgspec.json.encode({**order, "order_id": "o1"}))
    assert answer.forward_to == "w2" and answer.decision is None and len(forwarded) == 1
    decided = checks.answer(msgspec.json.encode({**order, "order_id": "o2"}), may_forward=False)
    assert decided.forward_to is None and decided.decision is not None and len(forwarded) == 1
    batch = QueryHandler(engine, lambda: True, checks, 100).batch(
        msgspec.json.encode({"orders": [{**order, "order_id": "o3"}]})
    )
    assert batch.forward_to == "w2" and len(forwarded) == 2
    assert checks.forward_target(ACCT) == "w2" and len(forwarded) == 2  # asking counts nothing
