"""Fixtures: real nats-server processes on free loopback ports, and the recorded market data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from risk_worker.devservers import NatsServer

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


@pytest.fixture
def shared_data_dir() -> Path:
    """The recorded market data in `../shared/data`; skips the test when it is absent."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(
            "../shared/data is absent: recorded market data ships only beside the repo "
            "(CI and developer machines); skipping replay test"
        )
    return SHARED_DATA_DIR
