"""``risk-worker var seed FILE [--symbol-map FROM=TO]``: historical VaR samples from recorded
bars, written where the workers keep them (Redis), then ``risk.control.var.reload``.

Each bar's close is the sample at its timestamp (issue 13); a bar not on a multiple of
``RISK_VAR_SAMPLE_INTERVAL`` is skipped. The seeded samples are merged with the stored ones (a
seeded sample replaces a stored one at the same boundary) and each symbol keeps its latest
``RISK_VAR_WINDOW``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import nats.errors
import typer
from redis.exceptions import RedisError

from risk_worker.adapters import operator
from risk_worker.adapters.redis_store import connect_redis
from risk_worker.adapters.var_store import (
    VAR_RELOAD_SUBJECT,
    history_samples,
    load_samples,
    merge_samples,
    save_samples,
)
from risk_worker.cli.common import console, err, nats_unreachable, run_async, settings_or_exit
from risk_worker.devstack.replay import parse_symbol_map, read_ticks
from risk_worker.domain.returns import ReturnHistory
from risk_worker.service.settings import Settings

var = typer.Typer(no_args_is_help=True, help="Historical VaR samples (issue 13).")


@var.command("seed")
def seed(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV of one-minute bars.")
    ],
    symbol_map: Annotated[list[str] | None, typer.Option(help="FROM=TO, repeatable.")] = None,
) -> None:
    """Seed the VaR samples from recorded bars (the CSV `replay` takes) and tell the workers."""
    settings = settings_or_exit()
    if not settings.redis_url:
        err.print("[red]RISK_REDIS_URL is not set:[/red] the workers keep VaR samples in Redis")
        raise typer.Exit(2)
    try:
        ticks = read_ticks(file, parse_symbol_map(symbol_map or []))
    except ValueError as exc:
        err.print(f"[red]bad input:[/red] {exc}")
        raise typer.Exit(2) from None
    seeded = ReturnHistory(settings.var_sample_interval * 1000, settings.var_window)
    counts: dict[str, int] = {}
    for tick in ticks:
        if seeded.record(tick.symbol, tick.timestamp, tick.price):
            counts[tick.symbol] = counts.get(tick.symbol, 0) + 1
    try:
        kept = run_async(_store(settings, seeded))
    except (RedisError, OSError) as exc:
        err.print(f"[red]cannot write the samples to Redis:[/red] {exc!r}")
        raise typer.Exit(2) from None
    except nats.errors.Error as exc:
        raise nats_unreachable(settings.nats_url, exc, "publish to") from None
    for symbol in sorted(kept):
        console.print(f"{symbol}: {counts.get(symbol, 0)} bars, {kept[symbol]} samples kept")
    console.print(f"published {VAR_RELOAD_SUBJECT}")


async def _store(settings: Settings, seeded: ReturnHistory) -> dict[str, int]:
    """Merge ``seeded`` over the stored samples, write them, publish the reload."""
    client = connect_redis(settings.redis_url, timeout=5.0)
    try:
        stored = await load_samples(client)
        merged = ReturnHistory(seeded.interval_ms, seeded.window)
        merge_samples(merged, {s: rows for s, rows in stored.items() if s in seeded.symbols()})
        merge_samples(merged, history_samples(seeded))
        samples = history_samples(merged, seeded.symbols())
        await save_samples(client, samples)
    finally:
        await client.aclose()
    nc = await operator.connect(settings.nats_url, auth=settings.nats_auth)
    try:
        await nc.publish(VAR_RELOAD_SUBJECT, b"")
        await nc.flush()
    finally:
        await nc.close()
    return {s: len(rows) for s, rows in samples.items()}
