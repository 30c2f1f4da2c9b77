"""`risk-worker db`: apply and inspect the PostgreSQL schema migrations.

The database is `RISK_DATABASE_URL` (a secret: only its host, port and database are printed);
the migrations are in `RISK_MIGRATIONS_DIR`, else the repository's `migrations/`. Exit codes:
0 done, 1 migrations refused (changed or missing applied file, failing SQL), 2 configuration
or connection error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg
import typer
from rich.table import Table

from risk_worker.adapters.pg_migrate import MigrationError, MigrationState, migrate, status
from risk_worker.adapters.pg_migrate import migrations_dir as default_migrations_dir
from risk_worker.cli.common import console, database_url_or_exit, err, where, with_database

T = TypeVar("T")
db = typer.Typer(no_args_is_help=True, help="Apply and inspect the PostgreSQL schema migrations.")


def _inputs() -> tuple[str, Path]:
    """Reads RISK_DATABASE_URL (or _FILE) and the migrations directory, or exits 2 naming
    the variable."""
    url = database_url_or_exit()
    try:
        return url, default_migrations_dir()
    except FileNotFoundError as exc:
        err.print(f"[red]configuration error[/red] {exc}")
        raise typer.Exit(2) from None


def _with_connection(url: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``work`` on the database; exit 1 when a migration is refused, 2 on no database."""
    return with_database(url, work, (MigrationError,), "refused")


@db.command("migrate")
def migrate_command() -> None:
    """Apply the pending migrations in order (safe to run from several processes at once)."""
    url, directory = _inputs()
    applied = _with_connection(url, lambda conn: migrate(conn, directory))
    if not applied:
        console.print(f"database at {where(url)} is up to date")
        return
    for version in applied:
        console.print(f"applied {version}")
    console.print(f"applied {len(applied)} migration(s) to {where(url)}")


@db.command("status")
def status_command() -> None:
    """Show applied and pending migrations; exit 1 when an applied file changed or is missing."""
    url, directory = _inputs()
    states = _with_connection(url, lambda conn: status(conn, directory))
    table = Table(title=f"migrations at {where(url)}")
    for column in ("version", "name", "state", "applied at (UTC)"):
        table.add_column(column)
    for state in states:
        applied_at = "" if state.applied_at is None else state.applied_at.isoformat(" ", "seconds")
        table.add_row(state.version, state.name, _label(state), applied_at)
    console.print(table)
    pending = sum(s.applied_at is None for s in states)
    console.print(f"{len(states) - pending} applied, {pending} pending")
    if not all(s.checksum_ok for s in states):
        err.print("[red]an applied migration changed or is missing: migrate will refuse[/red]")
        raise typer.Exit(1)


def _label(state: MigrationState) -> str:
    if state.applied_at is None:
        return "[yellow]pending[/yellow]"
    return "[green]applied[/green]" if state.checksum_ok else "[red]changed or missing[/red]"
