"""`risk-worker dev` (embedded NATS + worker) and `risk-worker replay` (recorded ticks)."""

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
from risk_worker.devstack.nats_server import NatsServer, free_port, nats_reachable
from risk_worker.devstack.postgres import PostgresServer
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


def run_dev(settings: Settings, data_dir: Path, console: Console) -> None:
    """Embedded servers and the worker, until Ctrl-C.

    Starts nats-server (JetStream) in ``data_dir`` unless ``settings.nats_url`` answers, an
    embedded PostgreSQL unless ``RISK_DATABASE_URL`` is set and an embedded Redis unless
    ``RISK_REDIS_URL`` is set; migrates the database; runs the worker in this process. The
    servers it started are stopped afterwards.
    """
    data_dir = data_dir.resolve()
    nats_server: NatsServer | None = None
    pg_server: PostgresServer | None = None
    redis_server: RedisServer | None = None
    try:
        if nats_reachable(settings.nats_url):
            console.print(f"using the NATS server already at {settings.nats_url}")
        else:
            port = urlparse(settings.nats_url.split(",")[0]).port or 4222
            nats_server = NatsServer(data_dir / "nats", port=port)
            nats_server.start()
            console.print(
                f"started nats-server (JetStream) at {nats_server.url}, "
                f"log {nats_server.data_dir / 'nats-server.log'}"
            )
            settings = msgspec.structs.replace(settings, nats_url=nats_server.url)
        if settings.database_url:
            console.print(f"using the database at {redact(settings.database_url)}")
        else:
            pg_server = PostgresServer(data_dir / "postgres", port=_free_or(5432))
            pg_server.start()
            console.print(
                f"started PostgreSQL at {pg_server.url}, log {pg_server.data_dir / 'postgres.log'}"
            )
            settings = msgspec.structs.replace(settings, database_url=pg_server.url)
        if settings.redis_url:
            console.print(f"using Redis at {redact(settings.redis_url)}")
        else:
            redis_server = RedisServer(data_dir / "redis", port=_free_or(6379))
            redis_server.start()
            console.print(
                f"started Redis at {redis_server.url} (append-only file in {redis_server.data_dir})"
            )
            settings = msgspec.structs.replace(settings, redis_url=redis_server.url)
        applied = _run_async_value(_migrate(settings.database_url))
        console.print(f"database migrated ({', '.join(applied) or 'up to date'})")
        _print_usage(console, settings)
        _run_async(serve(settings))
    finally:
        for server in (redis_server, pg_server, nats_server):
            if server is not None:
                server.stop()
        console.print("stopped the embedded servers")


def _free_or(port: int) -> int:
    """``port`` (the server's usual one, so local tools find it) when free, else any free port."""
    return port if not _port_in_use(port) else free_port()


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _migrate(url: str) -> list[str]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await migrate(conn, migrations_dir())
    finally:
        await conn.close()


def _print_usage(console: Console, settings: Settings) -> None:
    env = (
        f"RISK_NATS_URL={settings.nats_url} RISK_DATABASE_URL={settings.database_url} "
        f"RISK_REDIS_URL={settings.redis_url}"
    )
    console.print(
        "\n[bold]risk-worker is starting.[/bold] In another terminal "
        "(`source .venv/bin/activate` first):\n"
        "  risk-worker tail                       # watch risk.> (metrics, alerts)\n"
        '  risk-worker publish pnl.update \'{"account_id": "ACC1", "balance": 100000}\'\n'
        "  risk-worker check --account ACC1 --symbol BTCUSDT --side buy --quantity 0.1 "
        "--price 60000 --dry-run\n"
        f"  {env} risk-worker status\n"
        "Ctrl-C stops the worker and the embedded servers.\n",
        soft_wrap=True,
    )


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
