"""``risk-worker bench``: the worker against the protocol's floor over a real nats-server.

Register with ``app.command(name="bench")(bench_command)``. The heavy modules are imported
when the command runs, so the CLI stays light.
"""

from __future__ import annotations

from typing import Annotated

import typer


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"not a comma-separated list of integers: {text!r}") from None
    if not levels or any(k < 1 for k in levels):
        raise typer.BadParameter("in-flight levels must be integers ≥ 1")
    return levels


def bench_command(
    accounts: Annotated[int, typer.Option(min=1, help="Accounts in the loaded book.")] = 1000,
    positions: Annotated[int, typer.Option(min=1, max=1000, help="Positions per account.")] = 20,
    requests: Annotated[
        int, typer.Option(min=1, help="Requests per phase (ignored with --duration).")
    ] = 2000,
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds per phase instead of --requests.")
    ] = None,
    inflight: Annotated[
        str, typer.Option(help="Comma-separated in-flight levels after the sequential phase.")
    ] = "16,128",
    rounds: Annotated[int, typer.Option(min=1, help="Alternating floor/worker rounds.")] = 3,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """Measure the worker against a bare echo responder (the floor), in alternating rounds."""
    import msgspec  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import Progress, SpinnerColumn, TimeElapsedColumn  # noqa: PLC0415

    from risk_worker.bench.load import BenchError  # noqa: PLC0415
    from risk_worker.bench.report import render  # noqa: PLC0415
    from risk_worker.bench.runner import BenchConfig, run_bench  # noqa: PLC0415
    from risk_worker.cli_common import run_async  # noqa: PLC0415

    cfg = BenchConfig(accounts, positions, requests, duration, _levels(inflight), rounds)
    err = Console(stderr=True)
    with Progress(
        SpinnerColumn(), *Progress.get_default_columns(), TimeElapsedColumn(), console=err
    ) as progress:
        task = progress.add_task("starting nats-server", total=2 * rounds)
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
        progress.update(task, description="done", completed=2 * rounds)
    if json_out:
        typer.echo(msgspec.json.format(msgspec.json.encode(result), indent=2).decode())
    else:
        render(result, Console())
