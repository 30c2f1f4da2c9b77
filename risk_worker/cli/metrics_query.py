"""``risk-worker metrics ACCOUNT``: an account's risk metrics now, asked of a worker.

Requests ``risk.query.metrics`` (subjects.md §3.15). Exit codes: 0 printed; 1 the account is
not known to the worker; 2 not answered (invalid account id, no reply, NATS unreachable, or the
worker cannot answer: no policy set).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from risk_worker.cli.ask import ask
from risk_worker.cli.common import console, err, settings_or_exit

QUERY_METRICS_SUBJECT = "risk.query.metrics"

ROWS: tuple[tuple[str, str, str], ...] = (
    ("equity", "equity", ",.2f"),
    ("balance", "balance", ",.2f"),
    ("unrealized PnL", "unrealized_pnl", ",.2f"),
    ("daily PnL", "daily_pnl", ",.2f"),
    ("margin used", "margin_used", ",.2f"),
    ("available margin", "available_margin", ",.2f"),
    ("margin ratio", "margin_ratio", ".4g"),
    ("leverage", "leverage", ".4g"),
    ("gross exposure", "gross_exposure", ",.2f"),
    ("net exposure", "net_exposure", ",.2f"),
    ("drawdown (daily)", "drawdown_daily", ".2%"),
    ("drawdown (max)", "drawdown_max", ".2%"),
    ("drawdown (window)", "drawdown_window", ".2%"),
    ("open positions", "open_positions", "d"),
    ("pending orders", "pending_orders", "d"),
)
"""(label, RiskMetricsMsg field, format) of the printed table."""


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "—"  # infinite (e.g. margin ratio without margin used)
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def metrics(
    account: Annotated[str, typer.Argument(help="Account id.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reply.")] = 2.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the raw reply.")] = False,
) -> None:
    """An account's risk metrics now (risk.query.metrics). Exit 0, 1 unknown account, 2 error."""
    settings = settings_or_exit()
    reply = ask(settings, QUERY_METRICS_SUBJECT, {"account_id": account}, timeout)
    body = reply.body
    if reply.status is not None:
        if json_out:
            console.print_json(data=body)
        else:
            err.print(
                f"[red]{escape(str(body.get('error')))}[/red] "
                f"({reply.status}): {escape(str(body.get('message')))}"
            )
        raise typer.Exit(1 if body.get("error") == "unknown_account" else 2)
    if json_out:
        console.print_json(data=body)
        raise typer.Exit(0)
    table = Table(
        title=f"account {escape(account)}: risk {body.get('risk_level')}, "
        f"{body.get('trading_state')} ({body.get('worker_id')})"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, field, spec in ROWS:
        table.add_row(label, _fmt(body.get(field), spec))
    for name, value in sorted((body.get("limit_utilization") or {}).items()):
        table.add_row(f"utilization: {escape(name)}", _fmt(value, ".1%"))
    if body.get("stale_marks"):
        table.add_row("stale marks", "yes")
    console.print(table)
    if body.get("strategies"):
        console.print(strategies_table(body["strategies"]))


def strategies_table(strategies: dict[str, Any]) -> Table:
    """One row per strategy of the account (the ``strategies`` section of the reply)."""
    table = Table(title="strategies")
    for column in ("strategy", "pnl", "daily pnl", "drawdown max", "drawdown daily", "gross"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    table.add_column("positions", justify="right")
    table.add_column("risk")
    table.add_column("state")
    for strategy_id, s in sorted(strategies.items()):
        table.add_row(
            escape(strategy_id),
            _fmt(s.get("pnl"), ",.2f"),
            _fmt(s.get("daily_pnl"), ",.2f"),
            _fmt(s.get("drawdown_max"), ".2%"),
            _fmt(s.get("drawdown_daily"), ".2%"),
            _fmt(s.get("gross_exposure"), ",.2f"),
            _fmt(s.get("open_positions"), "d"),
            str(s.get("risk_level")),
            str(s.get("trading_state")),
        )
    return table
