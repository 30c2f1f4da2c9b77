"""The queries and batch checks under the deployed users (docker/nats-server.conf on a real
nats-server; fixtures in tests/secured_nats.py): the worker serves them within its
permissions, the OMS (``client``) and the operators may ask them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import nats.errors

from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.policies import default_policies
from risk_worker.service.policy_source import StaticPolicySource
from risk_worker.service.worker import Worker
from tests.harness import now_ms
from tests.helpers import wait_for
from tests.secured_nats import (
    BUCKET,
    ENC,
    PASSWORDS,
    Peer,
    compose_settings,
    peers,
    secured_server,
    violations_in_log,
)

__all__ = ["peers", "secured_server"]  # fixtures, imported for pytest


async def test_client_and_operator_ask_batches_and_queries_of_a_worker_with_its_permissions(
    secured_server: NatsServer, peers: dict[str, Peer]
) -> None:
    url = secured_server.url.replace("nats://", f"nats://worker:{PASSWORDS['worker']}@")
    worker = Worker(
        compose_settings("risk-worker", url, kv_bucket=BUCKET),
        StaticPolicySource(default_policies()),
        None,
    )
    await worker.start()
    try:
        assert worker.watcher is not None
        await wait_for(worker.watcher.confirmed, 5.0, message="trading state never confirmed")
        client = peers["client"]
        account = "acct-" + uuid.uuid4().hex[:8]
        await client.nc.publish(
            "pnl.update", ENC.encode({"account_id": account, "balance": 1e6, "timestamp": now_ms()})
        )
        await client.nc.publish("market.tick.BTCUSDT", ENC.encode({"price": 60_000.0}))
        order = {"account_id": account, "symbol": "BTCUSDT", "side": "BUY", "price": 60_000.0}
        for user in ("client", "operator"):
            nc = peers[user].nc

            async def ask(subject: str, body: dict[str, Any], nc: Any = nc) -> dict[str, Any]:
                reply = await nc.request(subject, ENC.encode(body), timeout=2.0)
                decoded: dict[str, Any] = json.loads(reply.data)
                return decoded

            async def known() -> bool:
                try:  # seen once in a full run: no responders right after the start
                    body = await ask("risk.query.metrics", {"account_id": account})
                except nats.errors.NoRespondersError:
                    return False
                return body.get("account_id") == account

            await wait_for(known, 5.0, interval=0.1, message=f"{user}: no metrics")
            orders = [{**order, "order_id": f"{user}-{i}", "quantity": 0.5} for i in range(2)]
            batch = await ask("risk.check.batch", {"orders": orders, "all_or_none": True})
            assert batch["approved"] is True, batch
            states = await ask("risk.query.states", {})
            assert states["confirmed"] is True, states
    finally:
        await worker.stop()

    for user in ("worker", "client", "operator"):
        assert violations_in_log(secured_server, user) == [], user
