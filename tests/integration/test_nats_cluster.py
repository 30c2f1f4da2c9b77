"""Clustered JetStream: the bucket and the audit stream at R3 on a 3-node cluster, reached
through a comma-separated ``RISK_NATS_URL``; replica counts reported and reconciled."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from nats.js import api

from risk_worker.adapters.event_stream import STREAM, ensure_stream
from risk_worker.adapters.input_stream import STREAM as INPUTS
from risk_worker.adapters.input_stream import ensure_inputs_stream
from risk_worker.adapters.kv_bucket import open_bucket
from risk_worker.devstack.nats_cluster import NatsCluster
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.devstack.redis_server import RedisServer
from risk_worker.errors import ServerUnavailableError, TradingStateError
from tests.helpers import connect, wait_for
from tests.integration.conftest import HarnessFactory
from tests.integration.test_cli_status import run_cli as run_status_cli
from tests.integration.test_dev_start import (
    START_TIMEOUT_S,
    assert_one_line_failure,
    dev_env,
    launch_dev,
    run_dev_to_end,
    stop,
    wait_until,
)
from tests.procs import run_cli

pytestmark = pytest.mark.slow


async def test_worker_on_the_cluster_keeps_bucket_and_stream_at_r3_and_status_shows_it(
    nats_cluster: NatsCluster, harness_factory: HarnessFactory
) -> None:
    assert nats_cluster.url.count(",") == 2
    h = await harness_factory(
        url=nats_cluster.url, kv_replicas=3, events_replicas=3, inputs_replicas=3
    )
    js = h.nc.jetstream()
    for name in (f"KV_{h.settings.kv_bucket}", STREAM, INPUTS):
        info = await js.stream_info(name)
        assert info.config.num_replicas == 3, name
        assert info.cluster is not None and info.cluster.leader in nats_cluster.server_names
        peers = {p.name for p in info.cluster.replicas or []}
        assert peers | {info.cluster.leader} == set(nats_cluster.server_names), name

    account = f"ACC-{uuid.uuid4().hex[:8]}"
    await h.pnl(account, 100_000.0)
    await h.tick("BTCUSDT", 50_000.0)
    await h.settle()
    assert (await h.check(account, "BTCUSDT", "BUY", 0.1, 50_000.0))["approved"] is True

    env = {"RISK_NATS_URL": nats_cluster.url, "RISK_KV_BUCKET": h.settings.kv_bucket}
    quick = {"RISK_MONITOR_INTERVAL": "0.1", "RISK_METRICS_MAX_INTERVAL": "0.5"}  # listens 1 s
    code, out = await run_status_cli({**env, **quick}, "status")
    assert code == 0, out
    rows = [line for line in out.splitlines() if "KV_" in line or "RISK_" in line]
    assert len(rows) == 3 and all("│ 3 " in row and "(leader)" in row for row in rows), out


async def test_existing_r1_stream_is_scaled_to_r3_and_an_r1_bucket_is_named_in_a_warning(
    nats_cluster: NatsCluster, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await connect(nats_cluster.url)
    try:
        js = nc.jetstream()
        with pytest.MonkeyPatch.context() as patch:  # a stream of its own, not the shared one
            patch.setattr("risk_worker.adapters.event_stream.STREAM", "RISK_EVENTS_SCALE")
            patch.setattr("risk_worker.adapters.event_stream.SUBJECTS", ["risk.scale.>"])
            await ensure_stream(js, 3600.0, 1)
            assert (await js.stream_info("RISK_EVENTS_SCALE")).config.num_replicas == 1
            await ensure_stream(js, 3600.0, 3)
        info = await js.stream_info("RISK_EVENTS_SCALE")
        assert info.config.num_replicas == 3
        await js.delete_stream("RISK_EVENTS_SCALE")

        bucket = f"rc_{uuid.uuid4().hex[:10]}"
        await js.create_key_value(api.KeyValueConfig(bucket=bucket, replicas=1))
        with caplog.at_level(logging.WARNING, "risk_worker.adapters.kv_bucket"):
            kv = await open_bucket(js, bucket, 3)
        assert (await kv.status()).stream_info.config.num_replicas == 1
        assert "has 1 replica(s) but RISK_KV_REPLICAS is 3" in caplog.text
    finally:
        await nc.close()


async def test_defaults_stay_r1_on_one_server(harness_factory: HarnessFactory) -> None:
    h = await harness_factory()
    assert (h.settings.kv_replicas, h.settings.events_replicas) == (1, 1)
    js = h.nc.jetstream()
    assert (await js.stream_info(f"KV_{h.settings.kv_bucket}")).config.num_replicas == 1
    assert (await js.stream_info(STREAM)).config.num_replicas == 1


async def test_r3_on_one_server_refused_at_creation_and_kept_at_r1_when_it_exists(
    own_nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await connect(own_nats_server.url)
    try:
        js = nc.jetstream()
        with pytest.raises(ServerUnavailableError, match="RISK_EVENTS_REPLICAS"):
            await ensure_stream(js, 3600.0, 3)
        with pytest.raises(TradingStateError, match="RISK_KV_REPLICAS"):
            await open_bucket(js, "rc_single", 3)
        await ensure_stream(js, 3600.0, 1)
        with caplog.at_level(logging.WARNING, "risk_worker.adapters.streams"):
            await ensure_stream(js, 7200.0, 3)  # the max age still changes
        info = await js.stream_info(STREAM)
        assert (info.config.num_replicas, info.config.max_age) == (1, 7200.0)
        assert "has 1 replica(s) and RISK_EVENTS_REPLICAS is 3" in caplog.text
        # RISK_INPUTS goes through the same mechanism
        with pytest.raises(ServerUnavailableError, match="RISK_INPUTS_REPLICAS"):
            await ensure_inputs_stream(js, 3600.0, 3)
        await ensure_inputs_stream(js, 3600.0, 1)
        with caplog.at_level(logging.WARNING, "risk_worker.adapters.streams"):
            await ensure_inputs_stream(js, 7200.0, 3)
        info = await js.stream_info(INPUTS)
        assert (info.config.num_replicas, info.config.max_age) == (1, 7200.0)
        assert "has 1 replica(s) and RISK_INPUTS_REPLICAS is 3" in caplog.text
    finally:
        await nc.close()


async def test_comma_separated_url_reaches_the_cluster_from_the_cli_and_a_bad_one_is_refused(
    nats_cluster: NatsCluster,
) -> None:
    spaced = " , ".join(nats_cluster.urls)
    code, out = await run_status_cli({"RISK_NATS_URL": spaced}, "emergency", "status")
    assert code == 0, out
    for bad in (f"{nats_cluster.urls[0]},127.0.0.1:4222", f"{nats_cluster.urls[0]},,"):
        code, out = await run_status_cli({"RISK_NATS_URL": bad}, "emergency", "status")
        assert code != 0 and "RISK_NATS_URL" in out, out
        assert "nats://HOST:PORT" in out or "empty server" in out, out


async def test_a_node_killed_and_restarted_rejoins_the_cluster(nats_cluster: NatsCluster) -> None:
    leader = nats_cluster.meta_leader()
    assert leader is not None
    nats_cluster.kill_node(leader)
    await wait_for(lambda: nats_cluster.meta_leader() not in (None, leader), 10.0)
    nats_cluster.start_node(leader)
    assert all(node.running for node in nats_cluster.nodes)


async def test_dev_cluster_starts_three_servers_and_the_worker_at_r3(
    tmp_path: Path, database_url: str, redis_server: RedisServer
) -> None:
    env = dev_env(RISK_DATABASE_URL=database_url, RISK_REDIS_URL=redis_server.url)
    refused = run_dev_to_end(env, tmp_path / "refused", tmp_path / "refused-logs", "--cluster")
    assert "unset RISK_NATS_URL" in assert_one_line_failure(refused)
    del env["RISK_NATS_URL"]
    dev = launch_dev(env, tmp_path / "data", tmp_path / "logs", "--cluster")
    try:
        wait_until(
            lambda: "serving risk.check.order" in dev.stdout or dev.proc.poll() is not None,
            START_TIMEOUT_S,
            lambda: f"dev --cluster never served{dev.output()}",
        )
        assert dev.proc.poll() is None, dev.output()
        url = dev.exports()["RISK_NATS_URL"]
        assert url.count(",") == 2 and "started a 3-node NATS cluster" in dev.stdout
        shell = {**env, "RISK_NATS_URL": url, "COLUMNS": "200"}
        status = await run_cli(shell, "status", "--wait", "0.2")
        assert status.returncode == 0, status
        lines = status.stdout.splitlines()
        rows = [line for line in lines if "KV_risk_control" in line or f"{STREAM} " in line]
        assert len(rows) == 2 and all("│ 3 " in row for row in rows), status.stdout
    finally:
        stop(dev)
    assert dev.proc.returncode == 0, dev.output()
