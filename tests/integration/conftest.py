"""Integration fixtures: a worker running in the test's event loop against real nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from risk_worker.devstack.nats_server import NatsServer
from tests.harness import Harness, start_harness, stop_harness

HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def harness_factory(nats_server: NatsServer) -> AsyncIterator[HarnessFactory]:
    """Start workers (with settings overrides or policies); all are stopped after the test."""
    started: list[Harness] = []

    async def make(**kwargs: Any) -> Harness:
        url = kwargs.pop("url", nats_server.url)
        h = await start_harness(url, **kwargs)
        started.append(h)
        return h

    yield make
    for h in reversed(started):
        await stop_harness(h)


@pytest.fixture
async def harness(harness_factory: HarnessFactory) -> Harness:
    """One worker with the built-in policies and default settings (fast monitor)."""
    return await harness_factory()


async def migrate_url(url: str) -> None:
    """Apply the project's migrations to the database at ``url``."""
    import asyncpg  # noqa: PLC0415

    from risk_worker.adapters.pg_migrate import migrate, migrations_dir  # noqa: PLC0415

    conn = await asyncpg.connect(url, timeout=10)
    try:
        await migrate(conn, migrations_dir())
    finally:
        await conn.close()


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    """A fresh database on the session PostgreSQL with the schema applied."""
    await migrate_url(database_url)
    return database_url
