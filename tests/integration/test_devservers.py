"""NatsServer starts real servers, restarts them in place and never leaves one behind."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from nats.js.errors import BucketNotFoundError

from risk_worker.devstack.nats_server import NatsServer, find_nats_server, free_port, nats_reachable
from risk_worker.devstack.postgres import PostgresServer
from risk_worker.devstack.preflight import DevStartError
from tests.helpers import connect


async def test_restart_when_bucket_created_then_same_port_and_bucket_still_there(
    own_nats_server: NatsServer,
) -> None:
    port = own_nats_server.port
    nc = await connect(own_nats_server.url)
    kv = await nc.jetstream().create_key_value(bucket="trading_state")
    await kv.put("emergency_stop", b"tripped")
    await nc.close()

    old_pid = own_nats_server.pid
    own_nats_server.restart()

    assert own_nats_server.port == port
    assert own_nats_server.pid != old_pid
    nc = await connect(own_nats_server.url)
    try:
        kv = await nc.jetstream().key_value("trading_state")
        entry = await kv.get("emergency_stop")
        assert entry.value == b"tripped"
    finally:
        await nc.close()


async def test_kill_when_started_again_then_same_port_and_store(
    own_nats_server: NatsServer,
) -> None:
    nc = await connect(own_nats_server.url)
    await nc.jetstream().create_key_value(bucket="crash_survivor")
    await nc.close()

    own_nats_server.kill()
    assert not own_nats_server.running
    assert not nats_reachable(own_nats_server.url)
    own_nats_server.start()

    nc = await connect(own_nats_server.url)
    try:
        await nc.jetstream().key_value("crash_survivor")
        with pytest.raises(BucketNotFoundError):
            await nc.jetstream().key_value("never_created")
    finally:
        await nc.close()


def test_stop_when_called_twice_then_process_gone_and_port_closed(tmp_path: Path) -> None:
    server = NatsServer(tmp_path)
    server.start()
    pid = server.pid
    assert pid is not None
    assert nats_reachable(server.url)

    server.stop()
    server.stop()

    assert not server.running
    assert server.pid is None
    assert not nats_reachable(server.url)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_context_manager_when_left_then_server_stopped(tmp_path: Path) -> None:
    with NatsServer(tmp_path, port=free_port()) as server:
        assert server.url == f"nats://127.0.0.1:{server.port}"
        assert nats_reachable(f"{server.url},nats://127.0.0.1:1")
        assert nats_reachable(f"127.0.0.1:{server.port}")
    assert not server.running
    assert not nats_reachable(server.url)


def test_start_when_port_taken_then_raises_with_log_tail_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        server = NatsServer(tmp_path, port=blocker.getsockname()[1])

        with pytest.raises(RuntimeError, match="log tail") as info:
            server.start(timeout=5.0)

    assert "address already in use" in str(info.value)
    assert not server.running


def test_nats_reachable_when_nothing_listens_then_false() -> None:
    assert not nats_reachable(f"nats://127.0.0.1:{free_port()}", timeout=0.2)
    assert not nats_reachable("nats://not a host:4222", timeout=0.2)


def test_find_nats_server_returns_an_executable() -> None:
    path = find_nats_server()

    assert os.access(path, os.X_OK)
    assert Path(path).name == "nats-server"


def test_postgres_start_when_stale_pid_file_names_a_live_other_process_then_recovers(
    own_postgres_server: PostgresServer,
) -> None:
    """A run killed with its postgres leaves postmaster.pid; after a while its pid belongs to
    another program, and PostgreSQL alone would refuse to start ("lock file already exists")
    when that program runs as the same user as postgres (the owner of pgdata)."""
    own_postgres_server.kill()
    pid_file = own_postgres_server.pgdata / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    owner = own_postgres_server.pgdata.stat().st_uid
    user = owner if os.geteuid() == 0 else None  # as root, postgres runs as another user
    with subprocess.Popen(["sleep", "60"], user=user) as other:
        try:
            pid_file.write_text("\n".join([str(other.pid), *lines[1:]]) + "\n")

            own_postgres_server.start()

            assert own_postgres_server.running
            assert int(pid_file.read_text().split()[0]) == own_postgres_server.pid
        finally:
            other.kill()


def test_postgres_start_when_a_live_postgres_serves_the_data_then_one_line_naming_its_pid(
    own_postgres_server: PostgresServer,
) -> None:
    second = PostgresServer(own_postgres_server.data_dir, port=free_port())

    with pytest.raises(DevStartError) as info:
        second.start()

    message = str(info.value)
    assert f"(pid {own_postgres_server.pid})" in message
    assert f"kill {own_postgres_server.pid}" in message
    assert "\n" not in message
    assert own_postgres_server.running
    assert not second.running
