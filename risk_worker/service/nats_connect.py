"""The worker's NATS connections: one policy for the main connection and the inputs' own.

Both connect to ``RISK_NATS_URL`` (one server or several, :func:`~risk_worker.adapters.
nats_auth.open_connection`) with the configured credentials, reconnect for ever 0.25 s apart,
ping every 2 s (two missed pings drop the connection, so a dead server is noticed within about
4 s), and give up starting after ``RISK_NATS_CONNECT_TIMEOUT``. A failure names the servers with
any password or token hidden.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.aio.client import Client

from risk_worker.adapters.nats_auth import describe_connect_error, open_connection
from risk_worker.errors import ServerUnavailableError
from risk_worker.service.settings import Settings, redact_servers

Callback = Callable[..., Awaitable[None]]


async def connect_worker(
    s: Settings, name: str, purpose: str, **callbacks: Callback | None
) -> Client:
    """Open a connection of the worker.

    Args:
        s: the settings (servers, credentials, connect timeout).
        name: the connection's name as the server shows it.
        purpose: what the connection is for, in the error (e.g. ``connect to NATS``).
        callbacks: nats-py's ``disconnected_cb``, ``reconnected_cb``, ``error_cb`` (optional).

    Raises:
        ServerUnavailableError: no server answered within ``RISK_NATS_CONNECT_TIMEOUT``, or the
            credentials were refused (the message says which).
    """
    options: dict[str, Any] = {k: v for k, v in callbacks.items() if v is not None}
    # nats-py retries the first connection itself (max_reconnect_attempts=-1 covers it), so
    # one deadline bounds the whole attempt.
    try:
        return await asyncio.wait_for(
            open_connection(
                s.nats_url,
                s.nats_auth,
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                ping_interval=2,
                max_outstanding_pings=2,
                connect_timeout=2,
                **options,
            ),
            timeout=s.nats_connect_timeout,
        )
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        why = describe_connect_error(exc, s.nats_auth)
        raise ServerUnavailableError(
            f"cannot {purpose} at {redact_servers(s.nats_url)} within "
            f"{s.nats_connect_timeout} s (RISK_NATS_URL): {why}"
        ) from exc
