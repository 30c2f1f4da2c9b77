"""Queries and batch checks over NATS request/reply (issue 13, item 4), on a real server."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from nats.aio.msg import Msg

from risk_worker.adapters import operator
from risk_worker.adapters.kv_bucket import encode_state, open_bucket
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.policies import Policy, default_policies
from risk_worker.domain.restricted import Restriction, restricted_key
from risk_worker.domain.trading_state import StateValue, account_key
from risk_worker.domain.types import Metric, Operator, PolicyType, StateSource, TradingState
from tests.harness import Harness, ListSink
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory

ENC = msgspec.json.Encoder()
GROSS_50K = Policy(
    "id-gross", "Gross Cap", PolicyType.HARD, Metric.GROSS_EXPOSURE, Operator.LTE, 50_000.0
)
ERROR_CODE = "Nats-Service-Error-Code"


def order(account: str, quantity: float, order_id: str) -> dict[str, Any]:
    """A BUY of ``quantity`` BTC at 1,000."""
    return {
        "order_id": order_id,
        "account_id": account,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": quantity,
        "price": 1_000.0,
    }


async def ask(h: Harness, subject: str, body: dict[str, Any] | bytes) -> Msg:
    data = body if isinstance(body, bytes) else ENC.encode(body)
    return await h.nc.request(subject, data, timeout=2.0)


async def funded(harness_factory: HarnessFactory, **kwargs: Any) -> tuple[Harness, str]:
    """A worker with a 50,000 gross-exposure cap and an account of 100,000 (BTC at 1,000)."""
    h = await harness_factory(policies=[*default_policies(), GROSS_50K], **kwargs)
    account = f"B-{uuid.uuid4().hex[:6]}"
    await h.pnl(account, 100_000.0)
    await h.tick("BTCUSDT", 1_000.0)
    await h.settle()
    return h, account


def reserved(announced: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reservations of the ``risk.reservations`` messages seen (batches), in order."""
    return [r for message in announced for r in message["reservations"]]


def basket(account: str) -> list[dict[str, Any]]:
    """30 + 15 + 10 BTC: each fits alone, the third not after the first two."""
    return [order(account, 30.0, "b1"), order(account, 15.0, "b2"), order(account, 10.0, "b3")]


async def test_batch_when_later_order_fits_only_without_earlier_ones_then_partly_denied(
    harness_factory: HarnessFactory,
) -> None:
    sink = ListSink()
    h, account = await funded(harness_factory, sink=sink)
    announced = await h.collect("risk.reservations")
    reply = await ask(h, "risk.check.batch", {"orders": basket(account)})
    body = msgspec.json.decode(reply.data)
    assert [d["approved"] for d in body["decisions"]] == [True, True, False]
    assert body["decisions"][2]["rejection_reason"] == "policy_violation"
    assert [d["order_id"] for d in body["decisions"]] == ["b1", "b2", "b3"]
    assert body["approved"] is False
    await wait_for(lambda: len(reserved(announced)) == 2, message="reservations not announced")
    assert len(announced) == 1  # one message for the batch's two
    assert [r["order_id"] for r in reserved(announced)] == ["b1", "b2"]
    assert [r.policy_name for r in sink.records] == ["Gross Cap"]  # b3's violation, audited


async def test_batch_when_all_or_none_and_one_denied_then_wholly_denied_and_nothing_reserved(
    harness_factory: HarnessFactory,
) -> None:
    h, account = await funded(harness_factory)
    announced = await h.collect("risk.reservations")
    reply = await ask(h, "risk.check.batch", {"orders": basket(account), "all_or_none": True})
    body = msgspec.json.decode(reply.data)
    reasons = [d["rejection_reason"] for d in body["decisions"]]
    assert reasons == ["batch_denied", "batch_denied", "policy_violation"]
    assert body["approved"] is False
    assert len(h.worker.engine.book.accounts[account].pending) == 0
    single = await h.check(account, "BTCUSDT", "BUY", 45.0, 1_000.0)
    assert single["approved"] is True, single  # the batch left its headroom free
    assert [r["order_id"] for r in reserved(announced)] == [single["order_id"]]  # before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "$"),
        ({"orders": []}, "orders"),
        ({"orders": [order("A1", 1.0, "x"), order("A2", 1.0, "y")]}, "orders"),
        (
            {"orders": [order("A1", 1.0, "x"), {**order("A1", 1.0, "y"), "side": "UP"}]},
            "orders[1].side",
        ),
        ({"orders": [order("A1", 1.0, str(i)) for i in range(4)]}, "orders"),
        ({"orders": [order("A1", 1.0, "x"), order("A1", 2.0, "x")]}, "orders[1].order_id"),
    ],
)
async def test_batch_when_invalid_then_400_naming_the_field(
    harness_factory: HarnessFactory, body: dict[str, Any] | bytes, field: str
) -> None:
    h = await harness_factory(max_batch=3)
    reply = await ask(h, "risk.check.batch", body)
    assert reply.headers is not None and reply.headers[ERROR_CODE] == "400"
    error = msgspec.json.decode(reply.data)
    assert (error["error"], error["field"]) == ("invalid_request", field), error


async def test_query_metrics_when_known_unknown_or_malformed_then_metrics_404_or_400(
    harness_factory: HarnessFactory,
) -> None:
    h, account = await funded(harness_factory)
    await h.position(account, "BTCUSDT", 10.0, 1_000.0)
    await h.settle()
    reply = await ask(h, "risk.query.metrics", {"account_id": account})
    assert not reply.headers
    metrics = msgspec.json.decode(reply.data)
    assert (metrics["account_id"], metrics["gross_exposure"]) == (account, 10_000.0)
    assert "drawdown_window" in metrics and metrics["worker_id"] == h.settings.worker_id
    unknown = await ask(h, "risk.query.metrics", {"account_id": "NOBODY"})
    assert unknown.headers is not None and unknown.headers[ERROR_CODE] == "404"
    assert msgspec.json.decode(unknown.data)["error"] == "unknown_account"
    bad = await ask(h, "risk.query.metrics", {"account": "x"})
    assert bad.headers is not None and bad.headers[ERROR_CODE] == "400"
    assert msgspec.json.decode(bad.data)["field"] == "account_id"


async def test_query_states_when_stop_and_restriction_set_then_both_listed_with_revisions(
    harness: Harness,
) -> None:
    kv = await open_bucket(harness.nc.jetstream(), harness.settings.kv_bucket)
    stop = StateValue(TradingState.HALTED, "desk", "alice", 1_700_000_000_000, StateSource.OPERATOR)
    stop_rev = await kv.put(account_key("ACC9"), encode_state(stop))
    restriction = Restriction("sanctions", "bob", 1_700_000_000_001)
    restrict_rev = await kv.put(restricted_key("XRPUSDT"), encode_state(restriction))

    async def listed() -> dict[str, Any] | None:
        body: dict[str, Any] = msgspec.json.decode(
            (await ask(harness, "risk.query.states", b"{}")).data
        )
        return body if body["restrictions"] and body["states"] else None

    await wait_for(listed, message="the states query never showed the stop")
    body = await listed()
    assert body is not None and body["confirmed"] is True
    assert {
        "key": account_key("ACC9"),
        "state": "HALTED",
        "reason": "desk",
        "updated_by": "alice",
        "updated_at": 1_700_000_000_000,
        "revision": stop_rev,
    } in body["states"]
    [row] = body["restrictions"]
    assert (row["symbol"], row["account_id"], row["by"], row["revision"]) == (
        "XRPUSDT",
        None,
        "bob",
        restrict_rev,
    )


async def test_services_info_when_worker_runs_then_lists_the_query_endpoints(
    harness: Harness,
) -> None:
    [info] = await operator.discover(harness.nc, "risk-worker")
    endpoints = {(e["name"], e["subject"], e["queue_group"]) for e in info["endpoints"]}
    assert endpoints == {
        ("check_order", "risk.check.order", "risk-workers"),
        ("check_batch", "risk.check.batch", "risk-workers"),
        ("query_metrics", "risk.query.metrics", "risk-workers"),
        ("query_states", "risk.query.states", "risk-workers"),
    }


async def test_batch_when_two_workers_then_the_accounts_owner_decides_it(
    own_nats_server: NatsServer, harness_factory: HarnessFactory
) -> None:
    a, account = await funded(harness_factory, url=own_nats_server.url)
    b = await harness_factory(
        url=own_nats_server.url,
        kv_bucket=a.settings.kv_bucket,
        policies=[*default_policies(), GROSS_50K],
    )
    await a.pnl(account, 100_000.0)  # again, for b, started after the first
    await a.tick("BTCUSDT", 1_000.0)
    await a.settle()
    await wait_for(lambda: b.worker.engine.metrics(account, 0) is not None, message="b unfunded")
    members = [h.worker.members for h in (a, b)]
    assert members[0] is not None and members[1] is not None

    def settled() -> bool:  # both see both, and agree on the account's owner
        spread = {members[0].owner_of(f"S-{i}") for i in range(32)}
        agree = members[0].owner_of(account) == members[1].owner_of(account)
        return len(spread) == 2 and agree

    await wait_for(settled, 10.0, 0.05, "the two workers never shared the accounts")
    owner = members[0].owner_of(account)
    for i in range(20):  # the queue group spreads them; the non-owner forwards its share
        orders = [
            {**o, "order_id": f"{o['order_id']}-{i}", "dry_run": True} for o in basket(account)
        ]
        body = msgspec.json.decode((await ask(a, "risk.check.batch", {"orders": orders})).data)
        assert {d["worker_id"] for d in body["decisions"]} == {owner}
        assert [d["approved"] for d in body["decisions"]] == [True, True, True]  # dry runs
        assert body["worker_id"] == owner
    found = await operator.discover(a.nc, "risk-worker")
    received = {
        info["metadata"]["worker_id"]: ep["num_requests"]
        for info in found
        for ep in info["stats"]["endpoints"]
        if ep["name"] == "check_batch"
    }
    assert sum(received.values()) == 20 and all(received.values()), received
    forwarded = {  # the non-owner forwarded every batch it received, the owner none
        h.settings.worker_id: h.worker.metrics.registry.get_sample_value(
            "risk_checks_forwarded_total"
        )
        for h in (a, b)
    }
    assert forwarded == {w: 0.0 if w == owner else received[w] for w in received}, forwarded


async def test_queries_when_services_protocol_off_then_answered_on_plain_queue_subscriptions(
    harness_factory: HarnessFactory,
) -> None:
    h, account = await funded(harness_factory, services_protocol=False)
    metrics = await ask(h, "risk.query.metrics", {"account_id": account})
    assert msgspec.json.decode(metrics.data)["equity"] == 100_000.0
    batch = await ask(h, "risk.check.batch", {"orders": basket(account), "all_or_none": True})
    assert msgspec.json.decode(batch.data)["approved"] is False
    assert len(h.worker.engine.book.accounts[account].pending) == 0
    states = await ask(h, "risk.query.states", b"")
    assert msgspec.json.decode(states.data)["confirmed"] is True
