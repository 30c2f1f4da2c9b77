"""`risk-worker dev` (embedded servers + worker) and `risk-worker replay` (recorded ticks)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import asyncpg
import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from risk_worker.adapters import operator
from risk_worker.adapters.pg_migrate import migrate, migrations_dir
from risk_worker.devstack.banner import banner
from risk_worker.devstack.childproc import ChildServer
from risk_worker.devstack.nats_cluster import NatsCluster
from risk_worker.devstack.nats_server import NatsServer, free_port
from risk_worker.devstack.postgres import PostgresServer
from risk_worker.devstack.preflight import (
    DataDirLock,
    DevStartError,
    check_http_port,
    check_nats_port,
)
from risk_worker.devstack.redis_server import RedisServer
from risk_worker.devstack.replay import parse_symbol_map, publish_ticks, read_ticks
from risk_worker.service.settings import Settings, redact
from risk_worker.service.worker import serve

T = TypeVar("T")


def _run_async(coro: Coroutine[Any, Any, None]) -> None:
    _run_async_value(coro)


def _run_async_value(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop  # noqa: PLC0415  # optional: absent on Windows
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def run_dev(
    settings: Settings,
    data_dir: Path,
    console: Console,
    *,
    http_host_set: bool = False,
    cluster: bool = False,
) -> None:
    """Embedded servers and the worker, until Ctrl-C.

    Locks ``data_dir`` (one `dev` per directory); starts nats-server (JetStream) in it unless a
    NATS server answers at ``settings.nats_url``, an embedded PostgreSQL unless
    ``RISK_DATABASE_URL`` is set and an embedded Redis unless ``RISK_REDIS_URL`` is set;
    migrates the database; prints the ``export`` lines the other commands need; runs the worker
    in this process with its HTTP endpoint on 127.0.0.1 (unless ``http_host_set``: the user
    chose ``RISK_HTTP_HOST``). The servers it started are stopped afterwards. ``cluster``:
    a 3-node JetStream cluster on free ports instead of one server (whatever answers at
    ``settings.nats_url``), the worker given its three URLs and replicas 3.

    Raises:
        RiskWorkerError: a known start failure (:class:`DevStartError`: the data directory is
            in use, a port is taken, a server named by a variable does not answer; or the
            worker's own, e.g. ``RISK_HTTP_PORT`` in use); the message is one line.
    """
    data_dir = data_dir.resolve()
    if not http_host_set:
        settings = msgspec.structs.replace(settings, http_host="127.0.0.1")
    lock = DataDirLock(data_dir)
    lock.acquire()
    started: list[ChildServer] = []
    try:
        check_http_port(settings.http_host, settings.http_port)
        settings = _start_servers(settings, data_dir, console, started, cluster)
        applied = _run_async_value(_migrate(settings.database_url))
        console.print(f"database migrated ({', '.join(applied) or 'up to date'})")
        console.print(banner(settings), soft_wrap=True, highlight=False, markup=False)
        _run_async(serve(settings))
    finally:
        for server in reversed(started):
            server.stop()
        if started:
            console.print("stopped the embedded servers")
        lock.release()


def _start_servers(
    settings: Settings,
    data_dir: Path,
    console: Console,
    started: list[ChildServer],
    cluster: bool = False,
) -> Settings:
    """Starts the servers no variable points at (appending each to ``started``); ``cluster``:
    three NATS servers (:func:`_start_cluster`) whatever answers at ``settings.nats_url``."""
    if cluster:
        settings = _start_cluster(settings, data_dir, console, started)
    elif check_nats_port(settings.nats_url):
        _say(console, f"using the NATS server already at {redact(settings.nats_url)}")
    else:
        port = urlparse(settings.nats_url.split(",")[0]).port or 4222
        nats_server = NatsServer(data_dir / "nats", port=port)
        _start(nats_server, started, "RISK_NATS_URL=nats://127.0.0.1:<free port>")
        _say(
            console,
            f"started nats-server (JetStream) at {nats_server.url}, "
            f"log {nats_server.data_dir / 'nats-server.log'}",
        )
        settings = msgspec.structs.replace(settings, nats_url=nats_server.url)
    if settings.database_url:
        _say(console, f"using the database at {redact(settings.database_url)}")
    else:
        pg_server = PostgresServer(data_dir / "postgres", port=_free_or(5432))
        _start(pg_server, started, "RISK_DATABASE_URL for a PostgreSQL of your own")
        _say(
            console,
            f"started PostgreSQL at {pg_server.url}, log {pg_server.data_dir / 'postgres.log'}",
        )
        settings = msgspec.structs.replace(settings, database_url=pg_server.url)
    if settings.redis_url:
        _say(console, f"using Redis at {redact(settings.redis_url)}")
    else:
        redis_server = RedisServer(data_dir / "redis", port=_free_or(6379))
        _start(redis_server, started, "RISK_REDIS_URL for a Redis of your own")
        _say(
            console,
            f"started Redis at {redis_server.url} (append-only file in {redis_server.data_dir})",
        )
        settings = msgspec.structs.replace(settings, redis_url=redis_server.url)
    return settings


def _start_cluster(
    settings: Settings, data_dir: Path, console: Console, started: list[ChildServer]
) -> Settings:
    """Starts the 3-node cluster (its nodes appended to ``started``); the worker's settings
    then name its three URLs and keep the bucket and the stream at three replicas."""
    nats_cluster = NatsCluster(data_dir / "nats-cluster")
    try:
        nats_cluster.start()
    finally:
        started.extend(nats_cluster.nodes)
    _say(
        console,
        f"started a 3-node NATS cluster (JetStream domain {nats_cluster.domain}) at "
        f"{nats_cluster.url}, logs in {nats_cluster.data_dir}/node-*/",
    )
    return msgspec.structs.replace(
        settings,
        nats_url=nats_cluster.url,
        kv_replicas=3,
        events_replicas=3,
        inputs_replicas=3,
    )


def _say(console: Console, text: str) -> None:
    """One progress line, never wrapped (paths and URLs stay whole for copying)."""
    console.print(text, soft_wrap=True, highlight=False, markup=False)


def _start(server: ChildServer, started: list[ChildServer], alternative: str) -> None:
    """``server.start()``; a port taken meanwhile becomes one line naming it."""
    try:
        server.start()
    except RuntimeError as exc:
        if "already in use" not in str(exc).lower():
            raise
        raise DevStartError(
            f"port {server.port} for {server.NAME} was taken by another program while `dev` "
            f"started: start again (`dev` picks a free port), or set {alternative}"
        ) from None
    started.append(server)


def _free_or(port: int) -> int:
    """``port`` (the server's usual one, so local tools find it) when free, else any free port."""
    return port if not _port_in_use(port) else free_port()


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _migrate(url: str) -> list[str]:
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DevStartError(
            f"cannot reach the database at {redact(url)} (RISK_DATABASE_URL): {exc}; "
            "`unset RISK_DATABASE_URL` and `dev` starts its own PostgreSQL"
        ) from None
    try:
        return await migrate(conn, migrations_dir())
    finally:
        await conn.close()


def _utc_ms(text: str | None) -> int | None:
    if text is None:
        return None
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def replay_file(
    settings: Settings,
    file: Path,
    speed: float,
    symbol_map: list[str],
    symbols: list[str] | None,
    start: str | None,
    end: str | None,
) -> int:
    """Publish the ticks of a CSV in time order with a progress bar; returns the count.

    Raises:
        ValueError: a bad file, symbol map or date.
    """
    ticks = read_ticks(
        file, parse_symbol_map(symbol_map), symbols or None, _utc_ms(start), _utc_ms(end)
    )
    result: list[int] = []

    async def go() -> None:
        nc = await operator.connect(settings.nats_url, auth=settings.nats_auth)
        try:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            ) as progress:
                task = progress.add_task(f"replaying {file.name}", total=len(ticks))
                result.append(
                    await publish_ticks(
                        nc, ticks, speed, lambda n: progress.update(task, completed=n)
                    )
                )
        finally:
            await nc.close()

    _run_async(go())
    return result[0]
