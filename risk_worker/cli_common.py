"""What every CLI command shares: settings with a clean error, the event loop, the consoles."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console

from risk_worker.errors import ConfigError
from risk_worker.settings import Settings, load_settings

T = TypeVar("T")
console = Console()
err = Console(stderr=True)


def settings_or_exit() -> Settings:
    """Settings from ``RISK_*``; a bad value prints the variable's name and exits 2."""
    try:
        return load_settings()
    except ConfigError as exc:
        err.print(f"[red]configuration error[/red] {exc}")
        raise typer.Exit(2) from None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop (the default asyncio loop where uvloop is absent)."""
    try:
        import uvloop  # noqa: PLC0415  # optional at import time: absent on Windows
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def configure_logs(settings: Settings) -> None:
    """JSON lines or console logs, as ``RISK_LOG_FORMAT`` says."""
    from risk_worker.logs import configure_logging  # noqa: PLC0415

    configure_logging(settings.log_level, settings.log_format or None)
