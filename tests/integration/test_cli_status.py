"""`risk-worker status` and `risk-worker tail`, run as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import nats.errors

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
        metrics_max_interval=0.5,
        kv_bucket="risk_control",
    )
    await h.pnl("STATUS1", 123_456.0)
    await h.pnl("STATUS2", 50_000.0)
    await h.settle()
    await operator.trip(h.nc, "risk_control", TradingState.HALTED, "desk call", "alice", "STATUS2")
    await wait_for(lambda: h.worker.snapshots is not None and h.worker.snapshots.store.writes > 2)
    env = {"RISK_NATS_URL": own_nats_server.url}
    # without Redis, status listens RISK_METRICS_MAX_INTERVAL + 1.5 monitor intervals: every
    # account's metrics come at least once in that time
    every = {"RISK_MONITOR_INTERVAL": "0.1", "RISK_METRICS_MAX_INTERVAL": "0.5"}
    for extra in ({"RISK_REDIS_URL": own_redis_server.url}, every):
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


class Tail:
    """A ``risk-worker tail`` process whose stdout and stderr lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(proc.stdout, self.out)),
            asyncio.create_task(self._read(proc.stderr, self.err)),
        ]

    @staticmethod
    async def _read(stream: asyncio.StreamReader, lines: list[str]) -> None:
        async for line in stream:
            lines.append(line.decode())

    @classmethod
    async def start(cls, url: str, *args: str) -> Tail:
        proc = await asyncio.create_subprocess_exec(
            CLI,
            "tail",
            "risk.cli.>",
            *args,
            env={**os.environ, "RISK_NATS_URL": url},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def hears(self, url: str, marker: str) -> None:
        """Publish ``marker`` on risk.cli.test until tail prints it (it may not be subscribed
        yet, or be reconnecting)."""

        async def heard() -> bool:
            try:
                nc = await operator.connect(url, connect_timeout=0.5)
            except (OSError, nats.errors.Error):
                return False  # the server is not back yet
            try:
                await nc.publish("risk.cli.test", f'{{"marker": "{marker}"}}'.encode())
                await nc.flush()
            finally:
                await nc.close()
            return any(marker in line for line in self.out)

        await wait_for(heard, 15.0, 0.2, f"tail never printed {marker}: {self.out} {self.err}")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
        await self.proc.wait()
        for reader in self._readers:
            reader.cancel()


async def test_tail_when_nats_restarts_then_says_lost_naming_server_and_resumes_printing(
    own_nats_server: NatsServer,
) -> None:
    server = own_nats_server
    tail = await Tail.start(server.url)
    try:
        await tail.hears(server.url, "before-outage")
        server.kill()
        await wait_for(
            lambda: any("lost" in line for line in tail.err),
            15.0,
            0.05,
            f"tail said nothing on stderr when NATS went away: {tail.err}",
        )
        notice = next(line for line in tail.err if "lost" in line)
        assert f"connection to NATS at {server.url} lost" in notice
        await asyncio.to_thread(server.start)  # the same port
        await tail.hears(server.url, "after-restart")
        assert any(f"reconnected to NATS at {server.url}" in line for line in tail.err), tail.err
        assert tail.proc.returncode is None
    finally:
        await tail.stop()


async def test_tail_when_nats_stays_away_then_exits_1_after_max_disconnect(
    own_nats_server: NatsServer,
) -> None:
    server = own_nats_server
    tail = await Tail.start(server.url, "--max-disconnect", "1")
    try:
        await tail.hears(server.url, "before-outage")
        server.kill()
        code = await asyncio.wait_for(tail.proc.wait(), 30)
        assert code == 1, tail.err
        await wait_for(lambda: any("gave up" in line for line in tail.err), 5.0)
        assert any(f"NATS at {server.url} unreachable for 1 s" in line for line in tail.err)
        assert any(f"connection to NATS at {server.url} lost" in line for line in tail.err)
    finally:
        await tail.stop()
