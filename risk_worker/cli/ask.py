"""Asking the workers over NATS request/reply from the CLI: one request, its decoded reply.

Shared by ``risk-worker metrics`` and ``risk-worker check --file``: connect with the CLI's
credentials, request, close; no reply is exit 2 (treat an order as denied), an unreachable
server the usual one-line message.
"""

from __future__ import annotations

from typing import Any

import msgspec
import nats.errors
import typer

from risk_worker.adapters import operator
from risk_worker.adapters.check_handler import ERROR_CODE
from risk_worker.cli.common import err, nats_unreachable, run_async
from risk_worker.service.settings import Settings


class Reply(msgspec.Struct, frozen=True):
    """A decoded reply: the body and the service-error status (None when not an error)."""

    body: dict[str, Any]
    status: str | None


def ask(settings: Settings, subject: str, body: object, timeout: float) -> Reply:
    """Send ``body`` (JSON) on ``subject`` and wait up to ``timeout`` seconds for the reply.

    Raises:
        typer.Exit: 2 with a message on stderr when there is no reply or no responder, or
            when NATS cannot be reached.
    """

    async def go() -> Reply:
        nc = await operator.connect(settings.nats_url, auth=settings.nats_auth)
        try:
            msg = await nc.request(subject, msgspec.json.encode(body), timeout=timeout)
        finally:
            await nc.close()
        decoded: dict[str, Any] = msgspec.json.decode(msg.data)
        status = (msg.headers or {}).get(ERROR_CODE)
        return Reply(decoded, status)

    try:
        return run_async(go())
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as exc:
        err.print(f"[red]no reply on {subject} ({type(exc).__name__})[/red]")
        raise typer.Exit(2) from None
    except (OSError, nats.errors.Error) as exc:
        raise nats_unreachable(settings.nats_url, exc) from None
    except msgspec.DecodeError as exc:
        err.print(f"[red]unreadable reply on {subject}: {exc}[/red]")
        raise typer.Exit(2) from None
