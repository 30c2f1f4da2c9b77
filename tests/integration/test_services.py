"""The worker as a NATS service: discoverable and counted the way standard tooling expects."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import msgspec

from risk_worker.adapters import operator
from risk_worker.devstack.nats_server import NatsServer
from tests.integration.conftest import HarnessFactory

CLI = str(Path(sys.executable).parent / "risk-worker")


async def test_services_when_two_workers_run_then_info_and_stats_valid_and_cli_lists_both(
    own_nats_server: NatsServer, harness_factory: HarnessFactory
) -> None:
    a = await harness_factory(url=own_nats_server.url)
    b = await harness_factory(url=own_nats_server.url)
    await a.pnl("SRV1", 100_000.0)
    await a.settle()
    await b.settle()
    for _ in range(6):
        assert (await a.check("SRV1", "BTCUSDT", "BUY", 0.1, 50_000.0, dry_run=True))["approved"]
    for bad in (b"not json", b'{"order_id": 1}', b"[]"):
        reply = await a.request(bad)
        assert reply.headers is not None and reply.headers["Nats-Service-Error-Code"] == "400"

    found = await operator.discover(a.nc, "risk-worker")
    assert len(found) == 2
    for info in found:
        assert info["type"] == "io.nats.micro.v1.info_response"
        assert info["name"] == "risk-worker" and info["version"]
        assert info["description"]  # without one, natscli drops the service
        endpoint, *queries = info["endpoints"]  # the check first, then the queries
        assert (endpoint["name"], endpoint["subject"], endpoint["queue_group"]) == (
            "check_order",
            "risk.check.order",
            "risk-workers",
        )
        assert [q["name"] for q in queries] == ["check_batch", "query_metrics", "query_states"]
        assert info["metadata"]["worker_id"] in {a.settings.worker_id, b.settings.worker_id}
    stats = [
        ep for info in found for ep in info["stats"]["endpoints"] if ep["name"] == "check_order"
    ]
    assert sum(ep["num_requests"] for ep in stats) == 9  # spread over the queue group
    assert sum(ep["num_errors"] for ep in stats) == 3  # the invalid requests
    assert any(ep.get("last_error") for ep in stats)  # the last invalid request's message

    ping = await a.nc.request("$SRV.PING.risk-worker", b"", timeout=1)
    assert msgspec.json.decode(ping.data)["type"] == "io.nats.micro.v1.ping_response"

    env = {**os.environ, "RISK_NATS_URL": own_nats_server.url, "COLUMNS": "200"}
    result = await asyncio.to_thread(
        subprocess.run,
        [CLI, "services"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "2 instance(s) of risk-worker" in result.stdout
    assert a.settings.worker_id in result.stdout and b.settings.worker_id in result.stdout
