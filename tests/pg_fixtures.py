"""PostgreSQL for the tests: the embedded server (pgserver's binaries) or an external one.

Set `RISK_TEST_DATABASE_URL` (a superuser DSN, e.g. `postgresql://postgres@127.0.0.1/postgres`)
to run the tests against an existing server instead of starting one. Either way each test that
asks for `database_url` gets a fresh, empty database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from risk_worker.devstack.postgres import PostgresServer

EXTERNAL_URL_VARIABLE = "RISK_TEST_DATABASE_URL"


class PostgresEndpoint(Protocol):
    """What a test needs from a server: the URL of a database it may create databases from."""

    @property
    def url(self) -> str:
        """A superuser DSN."""
        ...


@dataclass(frozen=True)
class ExternalPostgres:
    """A server the tests did not start (`RISK_TEST_DATABASE_URL`); never stopped by them."""

    url: str


@contextmanager
def pg_data_dir() -> Iterator[Path]:
    """A data directory outside pytest's temporary root, removed afterwards.

    As root, PostgreSQL runs as the ``pgserver`` user, which must traverse the directory's
    parents; a concurrent pytest session resets ``/tmp/pytest-of-<user>`` to mode 0700, which
    would lock a running server out of its own data.
    """
    path = Path(tempfile.mkdtemp(prefix="risk-worker-pg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def session_postgres(data_dir: Path) -> Iterator[PostgresEndpoint]:
    """Yields the external server when `RISK_TEST_DATABASE_URL` is set, else a started
    `PostgresServer(fast=True)` in `data_dir`, stopped on exit."""
    external = os.environ.get(EXTERNAL_URL_VARIABLE, "").strip()
    if external:
        yield ExternalPostgres(external)
        return
    with started_postgres(data_dir) as server:
        yield server


@contextmanager
def started_postgres(data_dir: Path) -> Iterator[PostgresServer]:
    """Yields a started `PostgresServer(fast=True)` in `data_dir`; stops it on exit."""
    server = PostgresServer(data_dir, fast=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def with_database(url: str, database: str) -> str:
    """The DSN `url` pointing at another database (user, host, port and query kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@asynccontextmanager
async def temporary_database(admin_url: str) -> AsyncIterator[str]:
    """Creates an empty database `test_<hex>` and yields its DSN; drops it (forcibly) after.

    Args:
        admin_url: DSN of a role allowed to CREATE and DROP DATABASE.
    """
    name = f"test_{uuid.uuid4().hex}"
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield with_database(admin_url, name)
    finally:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
