"""What every CLI command shares: settings with a clean error, the event loop, the consoles."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import typer
from rich.console import Console
from rich.markup import escape

from risk_worker.errors import ConfigError
from risk_worker.service.settings import Settings, load_settings, redact

T = TypeVar("T")
DB_TIMEOUT_S = 5.0
PIPED_WIDTH = 100_000
"""Columns of a console whose stream is not a terminal: wide enough that no table cell is cut
("…") and no line wraps; a table is only as wide as its content, so nothing is padded to it."""


def make_console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr): the terminal's width on a terminal, else
    ``PIPED_WIDTH`` columns (``COLUMNS`` ignored), so a piped or redirected table is whole.

    rich otherwise takes ``COLUMNS`` or the width of whichever standard stream is a terminal
    (80 when none is), and cuts cells to fit.
    """
    stream = sys.stderr if stderr else sys.stdout
    try:
        piped = not stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream: not a terminal
        piped = True
    return Console(stderr=stderr, width=PIPED_WIDTH if piped else None)


console = make_console()
err = make_console(stderr=True)


def settings_or_exit() -> Settings:
    """Settings from ``RISK_*``; a bad value prints the variable's name and exits 2."""
    try:
        return load_settings()
    except ConfigError as exc:
        err.print(f"[red]configuration error[/red] {exc}")
        raise typer.Exit(2) from None


def nats_unreachable(url: str, exc: BaseException, verb: str = "reach") -> typer.Exit:
    """Print "cannot <verb> NATS at <url>" (password redacted, nothing read as markup); the
    exit (code 2) for the caller to raise."""
    err.print(f"[red]cannot {verb} NATS at {escape(redact(url))}:[/red] {escape(repr(exc))}")
    return typer.Exit(2)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop (the default asyncio loop where uvloop is absent)."""
    try:
        import uvloop  # noqa: PLC0415  # optional at import time: absent on Windows
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def configure_logs(settings: Settings) -> None:
    """JSON lines or console logs, as ``RISK_LOG_FORMAT`` says."""
    from risk_worker.service.logs import configure_logging  # noqa: PLC0415

    configure_logging(settings.log_level, settings.log_format or None)


def database_url_or_exit() -> str:
    """``RISK_DATABASE_URL`` (or its ``_FILE``), or exit 2 naming the variable."""
    url = settings_or_exit().database_url
    if not url:
        err.print("[red]configuration error[/red] RISK_DATABASE_URL: not set (postgresql://…)")
        raise typer.Exit(2)
    return url


def where(url: str) -> str:
    """``host:port/database`` of a DSN, without user or password, for messages."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
    except ValueError:
        return "<unparsable RISK_DATABASE_URL>"


def with_database(
    url: str,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    refusals: tuple[type[Exception], ...] = (),
    refusal_label: str = "refused",
) -> T:
    """Connect (5 s timeout), run ``work``, close.

    Exits 1 on one of ``refusals`` (the command's own "no", printed as ``refusal_label``) and 2
    when PostgreSQL cannot be used; the message names the database, never the credentials.
    """

    async def go() -> T:
        conn = await asyncpg.connect(url, timeout=DB_TIMEOUT_S)
        try:
            return await work(conn)
        finally:
            await conn.close(timeout=DB_TIMEOUT_S)

    try:
        return asyncio.run(go())
    except refusals as exc:
        err.print(f"[red]{refusal_label}:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        problem = escape(f"{type(exc).__name__}: {exc}")
        err.print(f"[red]cannot use PostgreSQL at {where(url)}:[/red] {problem}")
        raise typer.Exit(2) from None
