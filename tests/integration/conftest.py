"""Integration fixtures: a worker running in the test's event loop against real nats-server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest

from risk_worker.adapters.input_stream import STREAM as INPUTS_STREAM
from risk_worker.devstack.nats_server import NatsServer
from tests.harness import Harness, start_harness, stop_harness
from tests.procs import Workers, running_workers

HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def harness_factory(nats_server: NatsServer) -> AsyncIterator[HarnessFactory]:
    """Start workers (with settings overrides or policies); all are stopped after the test.

    The session's server keeps ``RISK_INPUTS`` across tests: it is purged first, so a worker
    does not replay the account events of earlier tests."""
    await purge_inputs(nats_server.url)
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


async def purge_inputs(url: str) -> None:
    """Empty ``RISK_INPUTS`` on the server at ``url`` when it exists."""
    nc = await nats.connect(url)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().purge_stream(INPUTS_STREAM)
    finally:
        await nc.close()


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


@pytest.fixture
def workers(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Workers]:
    """Worker subprocesses for one test, all stopped afterwards (log tails shown on failure)."""
    yield from running_workers(tmp_path, request)
