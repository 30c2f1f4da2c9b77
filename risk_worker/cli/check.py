"""``risk-worker check``: one pre-trade check from the command line, and its exit code.

Exit codes: 0 approved; 1 denied (by a rule, a stop, or for lack of data); 2 not checked: a
usage error caught before anything is sent (side, quantity, price), a request the worker refused
as ``invalid_request`` (printed ``INVALID REQUEST`` with the field), a configuration error, or
no reply or a reply the client cannot read (``risk_worker.client``: treat the order as denied).
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import msgspec
import nats.errors
import typer
from rich.markup import escape

from risk_worker.cli.check_file import check_file, connect_client
from risk_worker.cli.common import console, err, nats_unreachable, run_async, settings_or_exit
from risk_worker.client import Decision
from risk_worker.domain.bounds import QUANTITY_MAX, is_price
from risk_worker.domain.types import DenyReason, Side


class ReplyDetail(StrEnum):
    """``--detail``: how much an approval's reply carries (subjects.md §5.2)."""

    FULL = "full"
    COMPACT = "compact"


INVALID_PREFIX = "invalid request: "
"""How the worker's reason of an ``invalid_request`` denial begins (then ``field: detail``)."""


def _quantity(value: float | None) -> float | None:
    """A base quantity in (0, ``QUANTITY_MAX``], as ``subjects.md`` §3.5 requires."""
    if value is not None and not 0 < value <= QUANTITY_MAX:  # NaN fails every comparison
        raise typer.BadParameter(
            f"must be > 0 and at most {QUANTITY_MAX:,.0f} base units, got {value!r}"
        )
    return value


def _price(value: float | None) -> float | None:
    """A limit price in [1e-12, 1e12] quote per base unit, or None (market order).

    JSON has no NaN: sent, ``nan`` would arrive as null and silently make a market order.
    """
    if value is not None and not is_price(value):
        raise typer.BadParameter(
            f"must be a price in [1e-12, 1e12] (omit it for a market order), got {value!r}"
        )
    return value


def check(
    account: Annotated[str | None, typer.Option(help="Account id.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol, e.g. BTCUSDT.")] = None,
    side: Annotated[Side | None, typer.Option(case_sensitive=False, help="buy or sell.")] = None,
    quantity: Annotated[
        float | None, typer.Option(callback=_quantity, help="Base quantity, > 0 and finite.")
    ] = None,
    price: Annotated[
        float | None,
        typer.Option(callback=_price, help="Limit price; omit for a market order."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Reserve nothing.")] = False,
    reduce_only: Annotated[bool, typer.Option("--reduce-only")] = False,
    strategy: Annotated[str | None, typer.Option(help="Strategy id.")] = None,
    order_id: Annotated[str | None, typer.Option(help="Order id (default: random).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reply.")] = 2.0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the decision (the reply's fields) as JSON.")
    ] = False,
    file: Annotated[
        Path | None,
        typer.Option(help="A JSON array of orders of one account, checked as one batch."),
    ] = None,
    all_or_none: Annotated[
        bool, typer.Option("--all-or-none", help="With --file: one denial denies all.")
    ] = False,
    traceparent: Annotated[
        str | None, typer.Option(help="A W3C traceparent header to send (echoed back).")
    ] = None,
    detail: Annotated[
        ReplyDetail,
        typer.Option(
            case_sensitive=False,
            help="full: approvals with their post-trade metrics (printed); compact: without.",
        ),
    ] = ReplyDetail.FULL,
) -> None:
    """Send one pre-trade check, or with --file a batch (risk.check.batch). Exit 0 approved,
    1 denied, 2 not checked (invalid, no reply)."""
    if file is not None:
        check_file(file, all_or_none, timeout, json_out, print_reply, traceparent, detail.value)
    if account is None or symbol is None or side is None or quantity is None:
        raise typer.BadParameter("--account, --symbol, --side and --quantity (or --file)")
    settings = settings_or_exit()
    request: dict[str, Any] = {
        "order_id": order_id or f"cli-{uuid.uuid4().hex[:12]}",
        "account_id": account,
        "symbol": symbol,
        "side": side.value,
        "quantity": quantity,
        "price": price,
        "strategy_id": strategy,
        "reduce_only": reduce_only,
        "dry_run": dry_run,
    }

    async def go() -> Decision:
        async with await connect_client(settings, timeout) as client:
            return await client.check(request, traceparent=traceparent, detail=detail.value)

    try:
        decision = run_async(go())
    except (OSError, nats.errors.Error) as exc:
        raise nats_unreachable(settings.nats_url, exc) from None
    if decision.client_side:  # no reply, no responders, timeout, bad reply: not checked
        err.print(
            f"[red]not checked ({decision.rejection_reason}): {escape(decision.reason)}; "
            "treat the order as DENIED[/red]"
        )
        raise typer.Exit(2)
    reply: dict[str, Any] = msgspec.to_builtins(decision)
    invalid = decision.rejection_reason == DenyReason.INVALID_REQUEST
    if json_out:
        console.print_json(data=reply)
    elif invalid:
        _print_invalid(reply)
    else:
        print_reply(reply)
    if invalid:
        raise typer.Exit(2)
    raise typer.Exit(0 if reply.get("approved") else 1)


def _print_invalid(reply: dict[str, Any]) -> None:
    """``INVALID REQUEST`` with the field and why: the worker did not check the order."""
    problem = str(reply.get("reason") or "")
    problem = problem.removeprefix(INVALID_PREFIX)
    console.print(
        f"[red]INVALID REQUEST[/red] order {escape(str(reply.get('order_id')))} account "
        f"{escape(str(reply.get('account_id')))}: {escape(problem)}"
    )
    console.print(
        "  the worker refused the request without checking it (nothing reserved); "
        "treat the order as denied"
    )


def print_reply(reply: dict[str, Any]) -> None:
    """APPROVED or DENIED with the risk level, then the reason, violations and warnings."""
    verdict = "[green]APPROVED[/green]" if reply.get("approved") else "[red]DENIED[/red]"
    console.print(
        f"{verdict} order {escape(str(reply.get('order_id')))} account {reply.get('account_id')} "
        f"risk {reply.get('risk_level')} ({reply.get('processing_time_us')} µs, "
        f"{reply.get('worker_id')})"
    )
    if reply.get("rejection_reason"):
        console.print(
            f"  reason: [bold]{reply['rejection_reason']}[/bold] — "
            f"{escape(str(reply.get('reason')))}"
        )
    for kind in ("violations", "warnings"):
        for v in reply.get(kind) or []:
            console.print(f"  {kind[:-1]}: {escape(str(v.get('message')))}")
    m = reply.get("post_trade_metrics")
    if m:
        console.print(
            f"  post-trade: equity {m['equity']:,.2f} leverage {m['leverage']} "
            f"margin used {m['margin_used']:,.2f} available {m['available_margin']:,.2f}"
        )
