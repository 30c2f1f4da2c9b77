"""``risk_worker.client.RiskClient`` against a real worker over a real nats-server.

The client rule (subjects.md §6) in code: approved only on a decodable ``"approved": true``;
no responders, a timeout, a reply lacking ``approved`` or bad JSON are denied decisions with
the client's reason, never exceptions.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import msgspec
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from risk_worker.client import (
    BAD_REPLY,
    NO_REPLY,
    NO_RESPONDERS,
    TIMEOUT,
    CheckOrder,
    QueryError,
    RiskClient,
)
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.types import RiskLevel
from tests.harness import Harness
from tests.integration.conftest import HarnessFactory

ORDER = CheckOrder(account_id="CL1", symbol="BTCUSDT", side="BUY", quantity=1.0, price=50_000.0)


async def described(h: Harness, account: str = "CL1") -> None:
    """An account with 100,000 of balance and a BTCUSDT mark at 50,000."""
    await h.pnl(account, 100_000.0)
    await h.tick("BTCUSDT", 50_000.0)
    await h.settle()


async def test_check_when_approved_or_denied_then_typed_decision(harness: Harness) -> None:
    await described(harness)
    async with await RiskClient.connect(harness.settings.nats_url) as client:
        approved = await client.check(ORDER, detail="full")
        assert approved.approved and approved.rejection_reason is None
        assert approved.order_id == ORDER.order_id and approved.account_id == "CL1"
        assert approved.worker_id == harness.settings.worker_id and not approved.client_side
        assert approved.risk_level in set(RiskLevel) and approved.post_trade_metrics is not None
        assert approved.post_trade_metrics.equity == pytest.approx(100_000.0)
        big = msgspec.structs.replace(ORDER, quantity=100.0, order_id="big-1")
        denied = await client.check(big)
        assert not denied.approved and denied.rejection_reason == "order_too_large"
        assert denied.violations and denied.violations[0].metric.startswith("order_")
        assert not denied.client_side and denied.error_code is None
        as_mapping = await client.check({"account_id": "CL1", "symbol": "BTC USDT",
                                         "side": "BUY", "quantity": 1})  # fmt: skip
        assert not as_mapping.approved and as_mapping.rejection_reason == "invalid_request"
        assert as_mapping.error_code == "400" and as_mapping.order_id is not None
    assert client.nc.is_closed


async def test_check_when_no_worker_then_denied_no_responders(
    own_nats_server: NatsServer,
) -> None:
    client = await RiskClient.connect(own_nats_server.url)
    try:
        decision = await client.check(ORDER)
        assert not decision.approved and decision.rejection_reason == NO_RESPONDERS
        assert decision.client_side and decision.order_id == ORDER.order_id
        batch = await client.check_batch([ORDER, ORDER])
        assert not batch.approved and batch.rejection_reason == NO_RESPONDERS
        assert [d.rejection_reason for d in batch.decisions] == [NO_RESPONDERS] * 2
        with pytest.raises(QueryError) as raised:
            await client.metrics("CL1")
        assert raised.value.reason == NO_RESPONDERS
    finally:
        await client.close()
    closed = await client.check(ORDER)  # the connection is closed: no reply, not a raise
    assert not closed.approved and closed.rejection_reason == NO_REPLY


Responder = Callable[[Msg], Awaitable[None]]


async def with_responder(
    url: str, respond: Responder, run: Callable[[RiskClient], Awaitable[None]]
) -> None:
    """A fake responder on ``risk.check.order`` and ``risk.check.batch`` of a server no
    worker uses, and a client with a short timeout."""
    fake = Client()
    await fake.connect(url)
    try:
        await fake.subscribe("risk.check.order", cb=respond)
        await fake.subscribe("risk.check.batch", cb=respond)
        await fake.flush()
        async with await RiskClient.connect(url, timeout=0.3) as client:
            await run(client)
    finally:
        await fake.close()


async def test_check_when_responder_never_answers_then_denied_timeout(
    own_nats_server: NatsServer,
) -> None:
    async def silent(msg: Msg) -> None:
        return None

    async def run(client: RiskClient) -> None:
        decision = await client.check(ORDER)
        assert not decision.approved and decision.rejection_reason == TIMEOUT
        batch = await client.check_batch([ORDER], all_or_none=True)
        assert not batch.approved and batch.decisions[0].rejection_reason == TIMEOUT

    await with_responder(own_nats_server.url, silent, run)


@pytest.mark.parametrize(
    "body",
    [
        b'{"order_id": "%s", "account_id": "CL1", "rejection_reason": null, "reason": "ok", '
        b'"risk_level": "LOW", "violations": [], "warnings": [], "post_trade_metrics": null, '
        b'"processing_time_us": 1, "worker_id": "fake"}',  # lacks "approved"
        b'{"approved": true',  # bad JSON
        b'{"approved": "true"}',
        b"",
    ],
)
async def test_check_when_reply_lacks_approved_or_is_bad_json_then_denied_bad_reply(
    own_nats_server: NatsServer, body: bytes
) -> None:
    async def reply(msg: Msg) -> None:
        await msg.respond(body.replace(b"%s", ORDER.order_id.encode()))

    async def run(client: RiskClient) -> None:
        decision = await client.check(ORDER)
        assert not decision.approved and decision.rejection_reason == BAD_REPLY
        assert decision.client_side
        batch = await client.check_batch([ORDER])
        assert not batch.approved and batch.rejection_reason == BAD_REPLY

    await with_responder(own_nats_server.url, reply, run)


async def test_check_batch_metrics_and_states_when_worker_answers_then_typed(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory()
    await described(h, "CLB")
    orders = [
        CheckOrder(account_id="CLB", symbol="BTCUSDT", side="BUY", quantity=q, price=50_000.0)
        for q in (0.5, 0.5, 100.0)
    ]
    async with await RiskClient.connect(h.settings.nats_url) as client:
        whole = await client.check_batch(orders, all_or_none=True)
        assert not whole.approved
        assert [d.rejection_reason for d in whole.decisions][:2] == ["batch_denied"] * 2
        partly = await client.check_batch(orders)
        assert not partly.approved and [d.approved for d in partly.decisions] == [True, True, False]
        assert [d.order_id for d in partly.decisions] == [o.order_id for o in orders]
        mixed = [orders[0], {**msgspec.to_builtins(orders[1]), "account_id": "OTHER"}]
        invalid = await client.check_batch(mixed)
        assert not invalid.approved and invalid.error_code == "400"
        assert invalid.rejection_reason == "invalid_request" and invalid.field == "orders"
        metrics = await client.metrics("CLB")
        assert metrics.account_id == "CLB" and metrics.pending_orders == 2
        with pytest.raises(QueryError) as raised:
            await client.metrics(f"NOBODY{uuid.uuid4().hex[:6]}")
        assert raised.value.reason == "unknown_account" and raised.value.code == "404"
        states = await client.states()
        assert states.confirmed and states.worker_id == h.settings.worker_id
