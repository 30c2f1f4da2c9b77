"""Operator views over NATS: services, status and publish (natscli is not available)."""

from __future__ import annotations

from typing import Annotated, Any

import nats.errors
import typer
from rich.table import Table

from risk_worker.adapters import operator
from risk_worker.cli.common import console, err, nats_unreachable, run_async, settings_or_exit
from risk_worker.cli.status_view import gather_status, render_status


def status(
    wait: Annotated[float, typer.Option(help="Seconds to listen for risk.metrics.")] = 0.0,
) -> None:
    """One screen: instances, trading states, and each account's equity, leverage, drawdowns
    and risk level (from Redis when RISK_REDIS_URL is set, else from risk.metrics)."""
    settings = settings_or_exit()
    try:
        view = run_async(gather_status(settings, wait or None))
    except (OSError, nats.errors.Error) as exc:
        raise nats_unreachable(settings.nats_url, exc) from None
    render_status(console, view)


def services(
    wait: Annotated[float, typer.Option(help="Seconds to collect answers.")] = 0.5,
) -> None:
    """List running risk-worker instances with their $SRV.STATS (natscli's micro ls/stats)."""
    from risk_worker.adapters.discovery import SERVICE_NAME  # noqa: PLC0415

    settings = settings_or_exit()

    async def go() -> list[dict[str, Any]]:
        nc = await operator.connect(settings.nats_url, auth=settings.nats_auth)
        try:
            return await operator.discover(nc, SERVICE_NAME, wait)
        finally:
            await nc.close()

    try:
        found = run_async(go())
    except (OSError, nats.errors.Error) as exc:
        raise nats_unreachable(settings.nats_url, exc) from None
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


def publish(
    subject: Annotated[str, typer.Argument(help="Subject, e.g. pnl.update.")],
    body: Annotated[str, typer.Argument(help="JSON object; timestamp defaults to now.")],
) -> None:
    """Publish one JSON event (what `nats pub` would do), e.g. to describe an account."""
    settings = settings_or_exit()
    try:
        message = operator.with_timestamp(body)
    except ValueError as exc:
        err.print(f"[red]bad body:[/red] {exc}")
        raise typer.Exit(2) from None

    async def go() -> None:
        nc = await operator.connect(settings.nats_url, auth=settings.nats_auth)
        try:
            await nc.publish(subject, message)
            await nc.flush()
        finally:
            await nc.close()

    try:
        run_async(go())
    except (OSError, nats.errors.Error) as exc:
        raise nats_unreachable(settings.nats_url, exc, "publish to") from None
    console.print(
        f"published on {subject}: {message.decode()}", markup=False, highlight=False, soft_wrap=True
    )
