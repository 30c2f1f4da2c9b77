"""``risk-worker tail``: one readable line per message, across NATS outages.

When the connection is lost (the server stopped, or two pings unanswered on a silent network)
tail says so on stderr, naming the server, and reconnects every ``RETRY_WAIT_S``; once back it
says so and prints again (what was published meanwhile is not shown). When NATS stays
unreachable for ``--max-disconnect`` seconds it gives up: exit 1. Exit 2 when NATS cannot be
reached at the start; Ctrl-C ends it with exit 0.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

import nats.errors
import typer
from nats.aio.client import Client

from risk_worker.adapters import operator
from risk_worker.cli.common import console, err, nats_unreachable, run_async, settings_or_exit
from risk_worker.errors import RiskWorkerError
from risk_worker.service.settings import Settings, redact

RETRY_WAIT_S = 0.5
"""Pause between two attempts to reconnect (seconds)."""
CONNECT_TIMEOUT_S = 3.0
"""Longest wait for one connection attempt (seconds)."""


def tail(
    subject: Annotated[str, typer.Argument(help="Subject to watch.")] = "risk.>",
    account: Annotated[str | None, typer.Option(help="Only messages of this account.")] = None,
    max_disconnect: Annotated[
        float,
        typer.Option(
            min=0.1, help="Seconds to keep reconnecting after NATS is lost before exiting 1."
        ),
    ] = 60.0,
) -> None:
    """Print messages on SUBJECT (default risk.>), one readable line each, until Ctrl-C; a lost
    NATS connection is reported on stderr and retried."""
    settings = settings_or_exit()
    try:
        code = run_async(_follow(settings, subject, account, max_disconnect))
    except KeyboardInterrupt:
        code = 0
    except (OSError, RiskWorkerError, nats.errors.Error) as exc:
        raise nats_unreachable(settings.nats_url, exc) from None
    raise typer.Exit(code)


async def _follow(settings: Settings, subject: str, account: str | None, give_up: float) -> int:
    """Subscribe and print until cancelled; 1 once NATS stayed unreachable ``give_up`` s.

    Raises:
        OSError, nats.errors.Error, NatsAuthError: the first connection failed.
    """
    server = redact(settings.nats_url)
    closed = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def on_closed() -> None:
        closed.set()

    async def show(msg: Any) -> None:
        if account is None or operator.account_of(msg) == account:
            console.print(operator.render(msg), markup=False, highlight=False, soft_wrap=True)

    async def subscribed(timeout: float) -> Client:  # noqa: ASYNC109 (the connect timeout)
        closed.clear()
        nc = await operator.connect(settings.nats_url, timeout, settings.nats_auth, on_closed)
        try:
            await nc.subscribe(subject, cb=show)
            await nc.flush(timeout=math.ceil(timeout))
        except BaseException:
            await nc.close()
            raise
        return nc

    nc = await subscribed(CONNECT_TIMEOUT_S)
    try:
        while True:
            await closed.wait()
            err.print(
                f"[yellow]connection to NATS at {server} lost[/yellow]; reconnecting every "
                f"{RETRY_WAIT_S:g} s, giving up after {give_up:g} s"
            )
            deadline = loop.time() + give_up
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    err.print(f"[red]gave up: NATS at {server} unreachable for {give_up:g} s[/red]")
                    return 1
                try:
                    nc = await subscribed(min(remaining, CONNECT_TIMEOUT_S))
                    break
                except (OSError, TimeoutError, nats.errors.Error):
                    await asyncio.sleep(min(RETRY_WAIT_S, max(deadline - loop.time(), 0.0)))
            err.print(
                f"[green]reconnected to NATS at {server}[/green]; tail resumes "
                "(messages published while disconnected are not shown)"
            )
    finally:
        await nc.close()
