"""Helpers shared by the tests: bounded waiting and NATS connections tuned for tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float = 5.0,  # noqa: ASYNC109 (a polling deadline, not a cancellable operation)
    interval: float = 0.01,
    message: str = "",
) -> None:
    """Waits until `predicate()` is true, polling every `interval` seconds.

    Args:
        predicate: A plain or async callable returning a bool.
        timeout: Deadline in seconds.
        interval: Pause between polls in seconds.
        message: Explains the failure when the deadline passes.

    Raises:
        AssertionError: When the predicate is still false after `timeout` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def connect(url: str, **options: object) -> Client:
    """Connects to NATS with settings that notice a dead or restarted server within a second.

    Args:
        url: Server URL, e.g. `nats_server.url`, or several separated by commas
            (`nats_cluster.url`).
        **options: Overrides for `nats.connect` keyword arguments.

    Returns:
        A connected client; the caller closes or drains it.
    """
    settings: dict[str, object] = {
        "connect_timeout": 2,
        "reconnect_time_wait": 0.1,
        "max_reconnect_attempts": -1,
        "ping_interval": 1,
        "max_outstanding_pings": 2,
        "allow_reconnect": True,
    }
    settings.update(options)
    return await nats.connect([u.strip() for u in url.split(",")], **settings)
