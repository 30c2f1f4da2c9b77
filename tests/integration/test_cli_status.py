"""`risk-worker status` and `risk-worker tail --account`, run as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from risk_worker.adapters import operator
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.devstack.redis_server import RedisServer
from risk_worker.domain.types import TradingState
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory

CLI = str(Path(sys.executable).parent / "risk-worker")


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        CLI,
        *args,
        env={**os.environ, "COLUMNS": "200", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


async def test_status_when_worker_running_then_shows_instance_states_and_accounts(
    own_nats_server: NatsServer, own_redis_server: RedisServer, harness_factory: HarnessFactory
) -> None:
    h = await harness_factory(
        url=own_nats_server.url,
        redis_url=own_redis_server.url,
        monitor_interval=0.1,
        kv_bucket="risk_control",
    )
    await h.pnl("STATUS1", 123_456.0)
    await h.pnl("STATUS2", 50_000.0)
    await h.settle()
    await operator.trip(h.nc, "risk_control", TradingState.HALTED, "desk call", "alice", "STATUS2")
    await wait_for(lambda: h.worker.snapshots is not None and h.worker.snapshots.store.writes > 2)
    env = {"RISK_NATS_URL": own_nats_server.url}
    for extra in ({"RISK_REDIS_URL": own_redis_server.url}, {"RISK_MONITOR_INTERVAL": "0.1"}):
        code, out = await run_cli({**env, **extra}, "status")
        assert code == 0, out
        assert "1 risk-worker instance(s)" in out
        assert h.settings.worker_id in out
        assert "account.STATUS2" in out and "HALTED" in out and "desk call" in out
        assert "STATUS1" in out and "123,456.00" in out
        source = "Redis snapshots" if "RISK_REDIS_URL" in extra else "risk.metrics"
        assert source in out


async def test_tail_when_account_given_then_prints_only_that_accounts_messages(
    own_nats_server: NatsServer, harness_factory: HarnessFactory
) -> None:
    h = await harness_factory(url=own_nats_server.url, monitor_interval=0.1)
    proc = await asyncio.create_subprocess_exec(
        CLI,
        "tail",
        "--account",
        "TAIL1",
        env={**os.environ, "RISK_NATS_URL": h.settings.nats_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            lines.append(line.decode())

    reader = asyncio.create_task(read())
    try:

        async def heard() -> bool:  # tail is subscribed once TAIL1's metrics show up
            await h.pnl("TAIL1", 10_000.0)
            await h.pnl("TAIL2", 20_000.0)
            return any("TAIL1" in line for line in lines)

        await wait_for(heard, 15.0, 0.3, f"tail printed {lines}")
        await asyncio.sleep(0.3)  # a few more monitor intervals: both accounts publish
        assert all("TAIL2" not in line for line in lines)
        assert any(line.startswith("risk.metrics TAIL1 equity=10,000.00") for line in lines)
    finally:
        proc.terminate()
        await proc.wait()
        reader.cancel()
