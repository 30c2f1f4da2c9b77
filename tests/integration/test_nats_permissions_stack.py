"""The whole stack under the deployed users: a worker with only its permissions, the
restricted list and the kill switch's cancel instruction (docker/nats-server.conf on a real
nats-server; fixtures in tests/secured_nats.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import nats.errors
import nats.js.errors
import pytest
from nats.aio.msg import Msg

from risk_worker.adapters import operator as ops
from risk_worker.adapters.kv_bucket import open_bucket, write_state
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.policies import Policy, default_policies
from risk_worker.domain.trading_state import GLOBAL_KEY
from risk_worker.domain.types import Metric, Operator, PolicyType
from risk_worker.service.policy_source import StaticPolicySource
from risk_worker.service.worker import Worker
from tests.harness import now_ms
from tests.helpers import wait_for
from tests.secured_nats import (
    BUCKET,
    ENC,
    PASSWORDS,
    Peer,
    active,
    compose_settings,
    halted,
    peers,
    secured_server,
    until_delivered,
    violations_in_log,
)

__all__ = ["peers", "secured_server"]  # fixtures, imported for pytest


async def test_worker_runs_end_to_end_with_only_its_permissions(
    secured_server: NatsServer, peers: dict[str, Peer], migrated_url: str
) -> None:
    """Everything the worker does at start and while serving stays inside its permissions:
    creating the stream and the bucket, watching, the services protocol, checks, metrics,
    the monitor lease, publishing audit records and consuming them into PostgreSQL."""
    operator, client = peers["operator"], peers["client"]
    url = secured_server.url.replace("nats://", f"nats://worker:{PASSWORDS['worker']}@")
    cap = Policy(
        "qty-cap", "Order Quantity Cap", PolicyType.HARD, Metric.ORDER_QUANTITY, Operator.LTE, 1.0
    )
    worker = Worker(
        compose_settings("risk-worker", url, kv_bucket=BUCKET, database_url=migrated_url),
        StaticPolicySource([*default_policies(), cap]),
        None,
    )
    metrics: list[Msg] = []

    async def keep(msg: Msg) -> None:
        metrics.append(msg)

    await operator.nc.subscribe("risk.metrics", cb=keep)
    await worker.start()
    try:
        assert worker.watcher is not None
        await wait_for(worker.watcher.confirmed, 5.0, message="trading state never confirmed")
        account = "acct-" + uuid.uuid4().hex[:8]
        await client.nc.publish(
            "pnl.update", ENC.encode({"account_id": account, "balance": 1e6, "timestamp": now_ms()})
        )
        await client.nc.publish("market.tick.BTCUSDT", ENC.encode({"price": 60_000.0}))

        async def check(quantity: float) -> dict[str, Any]:
            body = {
                "order_id": uuid.uuid4().hex,
                "account_id": account,
                "symbol": "BTCUSDT",
                "side": "BUY",
                "quantity": quantity,
                "price": 60_000.0,
            }
            reply = await client.nc.request("risk.check.order", ENC.encode(body), timeout=2.0)
            decoded: dict[str, Any] = json.loads(reply.data)
            return decoded

        async def approved() -> bool:
            return bool((await check(0.5))["approved"])

        await wait_for(approved, 5.0, interval=0.1, message="no check was approved")
        assert (await check(2.0))["rejection_reason"] == "order_too_large"

        op_kv = await open_bucket(operator.nc.jetstream(), BUCKET)
        await write_state(op_kv, GLOBAL_KEY, halted("operator"))

        async def stopped() -> bool:
            return bool((await check(0.5))["rejection_reason"] == "emergency_stop_active")

        await wait_for(stopped, 5.0, interval=0.1, message="the global stop never applied")

        conn = await asyncpg.connect(migrated_url)
        try:

            async def audited() -> bool:
                violations = await conn.fetchval(
                    "SELECT count(*) FROM risk_violations WHERE account_id = $1", account
                )
                stops = await conn.fetchval(
                    "SELECT count(*) FROM emergency_stops WHERE scope = 'global'"
                )
                return bool(violations >= 1 and stops >= 1)

            await wait_for(audited, 10.0, interval=0.1, message="audit rows never arrived")
        finally:
            await conn.close()
        await wait_for(lambda: bool(metrics), 5.0, message="no risk.metrics from the worker")
        instances = await ops.discover(operator.nc, "risk-worker")  # $SRV.INFO and $SRV.STATS
        assert [i["stats"]["endpoints"][0]["num_requests"] > 0 for i in instances] == [True]
        assert worker.publisher is not None and worker.publisher.failures == 0
    finally:
        await worker.stop()

    assert violations_in_log(secured_server, "worker") == []
    assert violations_in_log(secured_server, "client") == []


# -- issue 12: the restricted list, strategy and symbol stops, cancel_all ----------------------


@pytest.mark.parametrize(
    "key",
    [
        "restricted.BTCUSDT",
        "restricted.account.acct-1.BTCUSDT",
        "trading_state.strategy.momo-1",
        "trading_state.symbol.BTCUSDT",
    ],
)
async def test_worker_cannot_write_the_restricted_list_or_strategy_and_symbol_stops(
    peers: dict[str, Peer], key: str
) -> None:
    operator, worker = peers["operator"], peers["worker"]
    op_kv = await open_bucket(operator.nc.jetstream(timeout=5.0), BUCKET)
    value = ENC.encode(halted("operator"))
    revision = await op_kv.put(key, value)  # the operator may
    kv = await worker.kv()

    with pytest.raises(nats.errors.TimeoutError):
        await kv.put(key, ENC.encode(active("worker")))
    with pytest.raises(nats.errors.TimeoutError):
        await kv.delete(key)

    await worker.violation_about(f"$KV.{BUCKET}.{key}")
    entry = await op_kv.get(key)
    assert (entry.value, entry.revision) == (value, revision)
    assert operator.violations() == []


async def test_operator_restricts_and_lifts_and_client_hears_cancel_all_from_the_worker(
    peers: dict[str, Peer],
) -> None:
    from risk_worker.adapters import restricted_list as rl  # noqa: PLC0415
    from risk_worker.wire.outbound import CANCEL_ALL_SUBJECT  # noqa: PLC0415

    operator, worker, client = peers["operator"], peers["worker"], peers["client"]
    await open_bucket(operator.nc.jetstream(timeout=5.0), BUCKET)
    await rl.restrict(operator.nc, BUCKET, "BTCUSDT", "sanctions", "alice", "acct-1")
    assert [k for k, _, _ in await rl.restrictions(operator.nc, BUCKET)] == [
        "restricted.account.acct-1.BTCUSDT"
    ]
    assert await rl.unrestrict(operator.nc, BUCKET, "BTCUSDT", "bob", "acct-1") is not None
    assert await rl.restrictions(operator.nc, BUCKET) == []

    heard: list[Msg] = []

    async def keep(msg: Msg) -> None:
        heard.append(msg)

    await client.nc.subscribe(CANCEL_ALL_SUBJECT, cb=keep)
    await until_delivered(worker.nc, CANCEL_ALL_SUBJECT, heard, b'{"scope": "global"}')
    # the client may hear cancel_all but nothing else of risk.>, nor publish it
    await client.nc.subscribe("risk.metrics", cb=keep)
    await client.violation_about("risk.metrics")
    await client.nc.publish(CANCEL_ALL_SUBJECT, b'{"from": "client"}')
    await client.nc.flush()
    await client.violation_about(f'Publish to "{CANCEL_ALL_SUBJECT}"')
    await until_delivered(worker.nc, CANCEL_ALL_SUBJECT, heard, b'{"scope": "account"}')
    assert not any(b"client" in m.data for m in heard)
    assert worker.violations() == [] and operator.violations() == []
