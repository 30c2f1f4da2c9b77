"""`risk-worker dev` (embedded NATS + worker) and `risk-worker replay` (recorded ticks)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path
from urllib.parse import urlparse

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from risk_worker import operator
from risk_worker.app import serve
from risk_worker.devservers import NatsServer, nats_reachable
from risk_worker.replay import parse_symbol_map, publish_ticks, read_ticks
from risk_worker.settings import Settings


def _run_async(coro: object) -> None:
    try:
        import uvloop  # noqa: PLC0415  # optional: absent on Windows

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]


def run_dev(settings: Settings, data_dir: Path, console: Console) -> None:
    """Start nats-server (JetStream) in ``data_dir`` unless ``settings.nats_url`` answers,
    then run the worker in this process until Ctrl-C; the server is stopped afterwards."""
    server: NatsServer | None = None
    if nats_reachable(settings.nats_url):
        console.print(f"using the NATS server already at {settings.nats_url}")
    else:
        port = urlparse(settings.nats_url.split(",")[0]).port or 4222
        server = NatsServer(data_dir.resolve() / "nats", port=port)
        server.start()
        console.print(
            f"started nats-server (JetStream) at {server.url}, data in "
            f"{server.data_dir}, log {server.data_dir / 'nats-server.log'}"
        )
        settings = msgspec.structs.replace(settings, nats_url=server.url)
        os.environ["RISK_NATS_URL"] = server.url
    console.print(
        "\n[bold]risk-worker is starting.[/bold] In another terminal:\n"
        "  risk-worker tail                       # watch risk.> (metrics, alerts)\n"
        '  risk-worker publish pnl.update \'{"account_id": "ACC1", "balance": 100000}\'\n'
        "  risk-worker check --account ACC1 --symbol BTCUSDT --side buy --quantity 0.1 "
        "--price 60000 --dry-run\n"
        "Ctrl-C stops the worker and the embedded server.\n"
    )
    try:
        _run_async(serve(settings))
    finally:
        if server is not None:
            server.stop()
            console.print("stopped nats-server")


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
        nc = await operator.connect(settings.nats_url)
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
