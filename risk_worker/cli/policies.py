"""`risk-worker policies`: list, apply (from a TOML file) and disable the risk policies.

The database is `RISK_DATABASE_URL` (a secret: never printed). Workers pick up every write
within about a second (NOTIFY). Exit codes: 0 done (a dry run included), 1 refused (bad policy
file, conflicting concurrent change, no such policy), 2 configuration or connection error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer
from rich.markup import escape
from rich.table import Table

from risk_worker.adapters.policy_admin import (
    PolicyConflictError,
    PolicyFileError,
    apply,
    diff,
    disable,
    parse_policy_file,
    read_stored,
    render_diff,
)
from risk_worker.cli.common import console, database_url_or_exit, err, with_database

T = TypeVar("T")
policies = typer.Typer(no_args_is_help=True, help="List, apply and disable the risk policies.")


def _with_connection(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``work`` on the database; exit 1 on a conflict, 2 when there is no database."""
    return with_database(database_url_or_exit(), work, (PolicyConflictError,), "conflict")


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


@policies.command("list")
def list_command() -> None:
    """Show every policy in the table, in evaluation order (priority, then name)."""
    stored = _with_connection(read_stored)
    table = Table(title="risk policies")
    for column in ("name", "type", "metric", "operator", "threshold", "scope", "scope_id"):
        table.add_column(column)
    for column in ("enabled", "priority", "version"):
        table.add_column(column, justify="right")
    for p in stored:
        table.add_row(
            *(escape(v) for v in (p.name, p.type, p.metric, p.operator)),
            _number(p.threshold),
            escape(p.scope),
            escape(p.scope_id or "—"),
            "yes" if p.enabled else "[yellow]no[/yellow]",
            str(p.priority),
            str(p.version),
        )
    console.print(table)
    console.print(f"{len(stored)} policies")


@policies.command("apply")
def apply_command(
    file: Annotated[Path, typer.Argument(help="TOML file of [[policy]] tables.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Write the changes (default: dry run).")
    ] = False,
) -> None:
    """Show what FILE changes (added, changed, unchanged, untouched); write it with --yes.

    Upsert by name, never deletes; a policy changed by someone else since it was read makes
    the whole apply fail (exit 1) with nothing written.
    """
    try:
        specs = parse_policy_file(file)
    except PolicyFileError as exc:
        err.print(f"[red]bad policy file:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None

    async def work(conn: asyncpg.Connection) -> int | None:
        d = diff(await read_stored(conn), specs)
        for line in render_diff(d):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return await apply(conn, d) if yes else None

    written = _with_connection(work)
    if written is None:
        console.print("dry run: nothing written, pass --yes to write")
    else:
        console.print(f"wrote {written} policies")


@policies.command("disable")
def disable_command(
    name: Annotated[str, typer.Argument(help="Policy name (as in `policies list`).")],
) -> None:
    """Disable the policy NAME (it stays in the table; re-enable it from a file)."""
    found = _with_connection(lambda conn: disable(conn, name))
    if not found:
        err.print(f"[red]no such policy:[/red] {escape(repr(name))}")
        raise typer.Exit(1)
    console.print(f"policy {name!r} is disabled", markup=False, highlight=False)
