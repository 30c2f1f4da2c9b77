"""The ``risk-worker`` command line (typer). Each command parses, calls a layer below, prints."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import nats.errors
import typer
from rich.markup import escape

from risk_worker.adapters import operator
from risk_worker.cli import ops as cli_ops
from risk_worker.cli.bench import bench_command
from risk_worker.cli.check import check
from risk_worker.cli.common import configure_logs, console, err, run_async, settings_or_exit
from risk_worker.cli.contract import contract
from risk_worker.cli.db import db
from risk_worker.cli.metrics_query import metrics
from risk_worker.cli.policies import policies
from risk_worker.cli.restrict import one_scope, restrict, scope_label
from risk_worker.cli.status_view import states_table
from risk_worker.cli.tail import tail
from risk_worker.cli.var import var
from risk_worker.domain.state_keys import AUTO_STRATEGY, parse_state_key
from risk_worker.errors import RiskWorkerError, StaleRevisionError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="NATS-native pre-trade risk worker."
)
emergency = typer.Typer(no_args_is_help=True, help="Trip, clear and show the emergency stop.")
app.add_typer(emergency, name="emergency")
app.add_typer(db, name="db")
app.add_typer(policies, name="policies")
app.add_typer(restrict, name="restrict")
app.add_typer(var, name="var")


@app.command()
def run() -> None:
    """Run the worker (settings from RISK_* variables); SIGTERM/SIGINT/SIGHUP drain and exit 0."""
    from risk_worker.service.worker import serve  # noqa: PLC0415  # keeps the operator commands light

    settings = settings_or_exit()
    configure_logs(settings)
    try:
        run_async(serve(settings))
    except RiskWorkerError as exc:
        err.print(f"[red]risk-worker failed to start:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def dev(
    data_dir: Annotated[Path, typer.Option(help="Where the embedded servers keep data.")] = Path(
        ".risk-worker-dev"
    ),
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster", help="A 3-node NATS cluster (bucket and stream at R3), not one server."
        ),
    ] = False,
) -> None:
    """Start NATS (JetStream) unless RISK_NATS_URL answers, PostgreSQL unless RISK_DATABASE_URL
    is set and Redis unless RISK_REDIS_URL is set, then run the worker (HTTP on 127.0.0.1
    unless RISK_HTTP_HOST is set). Ctrl-C stops them all. A known start failure is one line
    and exit 1. --cluster: three NATS servers on free ports instead (RISK_NATS_URL unset)."""
    from risk_worker.devstack.start import run_dev  # noqa: PLC0415

    settings = settings_or_exit()
    configure_logs(settings)
    if cluster and os.environ.get("RISK_NATS_URL"):
        err.print(
            "[red]risk-worker dev cannot start:[/red] --cluster starts its own three NATS "
            "servers: unset RISK_NATS_URL (or drop --cluster to use that server)",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    try:
        run_dev(
            settings,
            data_dir,
            console,
            http_host_set="RISK_HTTP_HOST" in os.environ,
            cluster=cluster,
        )
    except RiskWorkerError as exc:
        err.print(f"[red]risk-worker dev cannot start:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None


app.command()(check)
app.command()(metrics)


def _state_op(coro_fn: Any) -> Any:
    settings = settings_or_exit()

    async def go() -> Any:
        nc = await operator.connect(settings.nats_url, auth=settings.nats_auth)
        try:
            return await coro_fn(nc, settings.kv_bucket)
        finally:
            await nc.close()

    try:
        return run_async(go())
    except StaleRevisionError as exc:
        err.print(f"[red]not cleared:[/red] {exc}")
        raise typer.Exit(1) from None
    except (OSError, RiskWorkerError, nats.errors.Error) as exc:
        err.print(f"[red]failed:[/red] {escape(repr(exc))}")
        raise typer.Exit(2) from None


@emergency.command("trip")
def emergency_trip(
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    by: Annotated[str, typer.Option(help="Who (recorded).")],
    account: Annotated[str | None, typer.Option(help="Account scope; global if omitted.")] = None,
    reducing: Annotated[bool, typer.Option("--reducing", help="REDUCING, not HALTED.")] = False,
    strategy: Annotated[str | None, typer.Option(help="Strategy scope.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol scope.")] = None,
) -> None:
    """Trip the emergency stop: HALTED (or REDUCING) globally or for one account, strategy or
    symbol. A HALT also has the workers release the scope's reservations and publish
    risk.commands.cancel_all (the OMS cancels working orders)."""
    from risk_worker.domain.types import TradingState  # noqa: PLC0415

    one_scope(account, strategy, symbol)  # an account's strategy: the workers' trip only
    state = TradingState.REDUCING if reducing else TradingState.HALTED
    revision = _state_op(
        lambda nc, b: operator.trip(nc, b, state, reason, by, account, strategy, symbol)
    )
    console.print(f"{scope_label(account, strategy, symbol)} → {state} (revision {revision})")


@emergency.command("clear")
def emergency_clear(
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    by: Annotated[str, typer.Option(help="Who (recorded).")],
    account: Annotated[str | None, typer.Option(help="Account scope; global if omitted.")] = None,
    revision: Annotated[
        int | None,
        typer.Option(
            help="Clear the global or the account's operator stop only if still at this "
            "revision (from `status`)."
        ),
    ] = None,
    auto_revision: Annotated[
        int | None,
        typer.Option(
            help="Clear the account's automatic trip (with --strategy: the automatic trip of "
            "that strategy on the account) only if still at this revision."
        ),
    ] = None,
    strategy: Annotated[str | None, typer.Option(help="Strategy scope.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol scope.")] = None,
) -> None:
    """Clear a stop (compare-and-set: a newer trip is never undone). With --account, both the
    operators' stop and the workers' automatic trip of the account are cleared; with --account
    and --strategy, the workers' automatic trip of that strategy on the account."""
    one_scope(account, strategy, symbol, account_strategy=True)
    if account is not None and strategy is not None and revision is not None:
        err.print(
            "[red]bad option:[/red] a strategy of an account has only the workers' automatic "
            "trip: use --auto-revision"
        )
        raise typer.Exit(2)
    done = _state_op(
        lambda nc, b: operator.clear(
            nc, b, reason, by, account, revision, auto_revision, strategy, symbol
        )
    )
    for key, new in done.items():
        scope = _scope_name(key)
        if new is None:
            console.print(f"{scope} is already ACTIVE")
        else:
            console.print(f"{scope} → ACTIVE (revision {new})")


def _scope_name(key: str) -> str:
    """``global``, ``account <id>``, ``auto <id>``, ``strategy <id>``, ``symbol <symbol>`` or
    ``strategy <id> of account <id> (automatic)`` for a trading-state key."""
    k = parse_state_key(key)
    if k is not None and k.kind == AUTO_STRATEGY:
        return f"strategy {k.strategy_id} of account {k.account_id} (automatic)"
    scope = key.removeprefix("trading_state.")
    return scope if scope == "global" else scope.replace(".", " ", 1)


@emergency.command("status")
def emergency_status(
    account: Annotated[str | None, typer.Option(help="One account; all if omitted.")] = None,
    strategy: Annotated[str | None, typer.Option(help="One strategy.")] = None,
    symbol: Annotated[str | None, typer.Option(help="One symbol.")] = None,
) -> None:
    """Show the trading states with their revisions: global, per account the operators'
    stop (account), the workers' automatic trip (auto) and their automatic trips of its
    strategies (auto.<account>.strategy.<id>), strategies and symbols, with who set each. With
    --account and --strategy: every state that stops that strategy's orders on the account."""
    one_scope(account, strategy, symbol, account_strategy=True)
    rows = _state_op(lambda nc, b: operator.states(nc, b, account, strategy, symbol))
    console.print(states_table(rows, None))


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
    from risk_worker.devstack.start import replay_file  # noqa: PLC0415

    settings = settings_or_exit()
    try:
        count = replay_file(settings, file, speed, symbol_map or [], symbol, start, end)
    except ValueError as exc:
        err.print(f"[red]bad input:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"published {count} ticks")


app.command()(cli_ops.services)
app.command()(cli_ops.status)
app.command()(cli_ops.publish)
app.command()(tail)
app.command(name="bench")(bench_command)
app.command()(contract)


def main() -> None:
    """Entry point of the ``risk-worker`` script."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
