"""``risk-worker check --file orders.json [--all-or-none]``: a batch check of one account.

The file holds a JSON array of check requests (subjects.md §3.5; ``order_id`` is made up when
absent), sent as one ``risk.check.batch`` (§3.16): decided in order by the account's owner,
each with the earlier ones reserved; with ``--all-or-none`` one denial denies them all and
reserves nothing. Exit codes as for one check: 0 every order approved; 1 one or more denied;
2 not checked (unreadable file, a request the worker refused as ``invalid_request`` — printed
with the field —, no reply).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
import typer
from rich.markup import escape

from risk_worker.cli.common import console, err, nats_unreachable, run_async, settings_or_exit
from risk_worker.client import BatchDecision, RiskClient
from risk_worker.service.settings import Settings
from risk_worker.wire.detail import Detail


async def connect_client(settings: Settings, timeout: float) -> RiskClient:  # noqa: ASYNC109
    """A client with the CLI's ``RISK_NATS_*`` connection (no reconnects: a lost server ends
    it), its requests waiting ``timeout`` seconds."""
    return await RiskClient.connect(
        settings.nats_url,
        auth=settings.nats_auth,
        timeout=timeout,
        allow_reconnect=False,
        name="risk-worker cli",
    )


def read_orders(path: Path) -> list[dict[str, Any]]:
    """The orders of ``path``: a JSON array of objects; an ``order_id`` added where absent.

    Raises:
        typer.Exit: 2 with the reason on stderr when the file cannot be read or is not a
            non-empty JSON array of objects.
    """
    try:
        orders = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        err.print(f"[red]cannot read {escape(str(path))}:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if not isinstance(orders, list) or not orders or not all(isinstance(o, dict) for o in orders):
        err.print(f"[red]{escape(str(path))} must hold a non-empty JSON array of orders[/red]")
        raise typer.Exit(2)
    return [
        o if "order_id" in o else {**o, "order_id": f"cli-{uuid.uuid4().hex[:12]}"} for o in orders
    ]


def check_file(
    path: Path,
    all_or_none: bool,
    timeout: float,
    json_out: bool,
    print_reply: Callable[[dict[str, Any]], None],
    traceparent: str | None = None,
    detail: Detail = "full",
) -> None:
    """Send the orders of ``path`` as one batch, print each decision (``print_reply``, the
    single check's printer), exit with the verdict. ``detail``: ``full`` (approvals with their
    post-trade metrics) or ``compact``."""
    settings = settings_or_exit()
    orders = read_orders(path)

    async def go() -> BatchDecision:
        async with await connect_client(settings, timeout) as client:
            return await client.check_batch(
                orders, all_or_none, traceparent=traceparent, detail=detail
            )

    try:
        batch = run_async(go())
    except (OSError, nats.errors.Error) as exc:
        raise nats_unreachable(settings.nats_url, exc) from None
    if batch.client_side:
        err.print(
            f"[red]not checked ({batch.rejection_reason}): {escape(batch.reason)}; "
            "treat every order as DENIED[/red]"
        )
        raise typer.Exit(2)
    body: dict[str, Any] = msgspec.to_builtins(batch)
    if json_out:
        console.print_json(data=body)
    if batch.error_code is not None:
        if not json_out:
            console.print(f"[red]INVALID REQUEST[/red] ({batch.error_code}) {escape(batch.reason)}")
            console.print("  the worker checked none of the orders; treat them as denied")
        raise typer.Exit(2)
    if not json_out:
        for decision in body["decisions"]:
            print_reply(decision)
        verdict = "[green]ALL APPROVED[/green]" if batch.approved else "[red]NOT ALL APPROVED[/red]"
        mode = " (all or none)" if all_or_none else ""
        passed = sum(d.approved for d in batch.decisions)
        console.print(f"{verdict}: {passed} of {len(batch.decisions)}{mode}")
    raise typer.Exit(0 if batch.approved else 1)
