"""What the soak runs against: a 3-node NATS cluster, embedded PostgreSQL and Redis, and
``risk-worker run`` processes that can be SIGKILLed and started again.

Every server is a :mod:`risk_worker.devstack` child on loopback under one data directory; the
workers use the bucket and the audit stream at R3, the servers' URLs, and a fixed HTTP port
each (so ``/ready`` is polled at the same place across a restart).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import asyncpg
import nats.errors
from nats.aio.client import Client

from risk_worker.adapters import operator
from risk_worker.adapters.event_stream import STREAM
from risk_worker.adapters.pg_migrate import migrate, migrations_dir
from risk_worker.bench.load import BenchError
from risk_worker.bench.procs import spawn, tail, wait_ready
from risk_worker.devstack.nats_cluster import NatsCluster
from risk_worker.devstack.nats_server import free_port
from risk_worker.devstack.postgres import PostgresServer
from risk_worker.devstack.redis_server import RedisServer
from risk_worker.domain.types import TradingState
from risk_worker.errors import TradingStateError

BUCKET = "risk_control"
DENY_POLICY_SQL = """
INSERT INTO risk_policies (name, type, metric, operator, threshold, scope, priority)
VALUES ('Max Order Notional', 'hard', 'order_notional', 'lte', 1000000, 'account', 100)"""
"""The bench's notional cap (:data:`~risk_worker.bench.load.DENY_POLICY`) in the database."""
RISK_WORKER = Path(sys.executable).parent / "risk-worker"


class SoakWorker:
    """One ``risk-worker run`` process, its log appended to ``<log_dir>/<id>.log``.

    Args:
        worker_id: ``RISK_WORKER_ID`` (kept across restarts).
        env: the whole environment (``RISK_*`` included) but the id and HTTP port.
    """

    def __init__(self, worker_id: str, env: dict[str, str], log_dir: Path) -> None:
        self.worker_id, self.port = worker_id, free_port()
        self.env = env | {"RISK_WORKER_ID": worker_id, "RISK_HTTP_PORT": str(self.port)}
        self.log = log_dir / f"{worker_id}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The running process's id, None when not running."""
        proc = self.proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def start(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Launch the worker and wait until ``/ready`` answers 200.

        Raises:
            BenchError: it exited or was not ready in time (with its log's tail).
        """
        self.proc = await spawn([str(RISK_WORKER), "run"], self.env, self.log)
        self.starts += 1
        ready = asyncio.ensure_future(wait_ready(self.port, timeout))
        exited = asyncio.ensure_future(self.proc.wait())
        await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        if not ready.done() or ready.exception() is not None:
            ready.cancel()
            await self.stop()
            raise BenchError(f"worker {self.worker_id} did not get ready{tail(self.log)}")

    async def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def stop(self) -> int | None:
        """SIGTERM, SIGKILL after 15 s; the exit code (None when never started)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15.0)
            except TimeoutError:
                proc.kill()
        return await proc.wait()


class SoakStack:
    """The servers of one soak under ``data_dir`` (started by `start`, stopped by `stop`)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.cluster = NatsCluster(data_dir / "nats")
        self.postgres = PostgresServer(data_dir / "postgres", fast=True)
        self.redis = RedisServer(data_dir / "redis")
        self.workers: list[SoakWorker] = []

    async def start(self) -> None:
        """Start the three servers, migrate the database and add the notional cap."""
        await asyncio.gather(
            asyncio.to_thread(self.cluster.start, 60.0),
            asyncio.to_thread(self.postgres.start, 60.0),
            asyncio.to_thread(self.redis.start, 20.0),
        )
        conn = await asyncpg.connect(self.postgres.url, timeout=10)
        try:
            await migrate(conn, migrations_dir())
            await conn.execute(DENY_POLICY_SQL)
        finally:
            await conn.close()

    def worker_env(self) -> dict[str, str]:
        """The workers' environment: this process's without ``RISK_*``, plus the servers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RISK_")}
        return env | {
            "RISK_NATS_URL": self.cluster.url,
            "RISK_KV_BUCKET": BUCKET,
            "RISK_KV_REPLICAS": "3",
            "RISK_EVENTS_REPLICAS": "3",
            "RISK_DATABASE_URL": self.postgres.url,
            "RISK_REDIS_URL": self.redis.url,
            "RISK_HTTP_HOST": "127.0.0.1",
            "RISK_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }

    async def start_workers(self, count: int) -> list[SoakWorker]:
        """Start ``count`` workers ``soak-w1``… one after the other (each ready before the next)."""
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            worker = SoakWorker(f"soak-w{i + 1}", self.worker_env(), log_dir)
            self.workers.append(worker)
            await worker.start()
        return self.workers

    async def rows_by_order(self) -> dict[str, int]:
        """Pre-trade violation rows of the soak's denied orders (``soak-d-*``): order id → rows.

        Raises:
            OSError, asyncpg.PostgresError: PostgreSQL did not answer.
        """
        conn = await asyncpg.connect(self.postgres.url, timeout=5)
        try:
            rows = await conn.fetch(
                "SELECT order_id, count(*) AS n FROM risk_violations "
                "WHERE source = 'pre_trade' AND order_id LIKE 'soak-d-%' GROUP BY order_id"
            )
        finally:
            await conn.close()
        return {str(r["order_id"]): int(r["n"]) for r in rows}

    async def stop(self) -> dict[str, int | None]:
        """Stop the workers (SIGTERM) then the servers; worker id → exit code."""
        codes = {w.worker_id: await w.stop() for w in self.workers}
        for server in (self.redis, self.postgres):
            await asyncio.to_thread(server.stop)
        await asyncio.to_thread(self.cluster.stop)
        return codes


async def issue_trip(nc: Client, account: str, why: str, timeout: float = 30.0) -> float:  # noqa: ASYNC109
    """HALT ``account`` (the operators' key), retrying while JetStream cannot write (a leader
    election); the seconds it took.

    Raises:
        BenchError: not written within ``timeout`` seconds.
    """
    started = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - started < timeout:
        try:
            await operator.trip(nc, BUCKET, TradingState.HALTED, why, "soak", account)
            return time.monotonic() - started
        except (nats.errors.Error, TradingStateError, OSError, TimeoutError) as exc:
            last = exc
            await asyncio.sleep(0.2)
    raise BenchError(f"could not HALT {account} within {timeout} s: {last!r}")


async def stream_leader(nc: Client, stream: str) -> str | None:
    """The server name leading ``stream``, None when unknown."""
    try:
        info = await nc.jetstream(timeout=2.0).stream_info(stream)
    except (nats.errors.Error, TimeoutError):
        return None
    return info.cluster.leader if info.cluster is not None else None


async def leader_roles(nc: Client, cluster: NatsCluster) -> dict[int, list[str]]:
    """Node index → what it leads: ``meta`` (JetStream), the bucket's stream, ``RISK_EVENTS``."""
    roles: dict[int, list[str]] = {i: [] for i in range(cluster.size)}
    meta = await asyncio.to_thread(cluster.meta_leader)
    if meta is not None:
        roles[meta].append("meta")
    for stream in (f"KV_{BUCKET}", STREAM):
        leader = await stream_leader(nc, stream)
        if leader in cluster.server_names:
            roles[cluster.index_of(leader)].append(stream)
    return roles
