"""A worker that starts while JetStream is unavailable (one node of a 3-node cluster, alone:
no meta leader, so the API answers "temporarily unavailable" or not at all) keeps asking, and
serves once the cluster is whole.

Before the start-up retry, the first such answer ended the worker with exit 1 (seen in CI: a
consumer created on a loaded cluster timed out); this one even ended it with a traceback.
Unit tests of the retry itself (what is retried, for how long): tests/unit/test_startup_step.py.
"""

from __future__ import annotations

import asyncio

import pytest

from risk_worker.devstack.nats_cluster import NatsCluster
from tests.helpers import connect, wait_for
from tests.procs import Workers, unique

pytestmark = pytest.mark.timeout(150)


async def test_start_when_jetstream_times_out_then_retried_and_serving_once_cluster_whole(
    nats_cluster: NatsCluster, workers: Workers
) -> None:
    cluster = nats_cluster
    survivor = cluster.urls[0]
    # One node of three, started alone: no JetStream meta leader.
    await asyncio.to_thread(cluster.stop)
    await asyncio.to_thread(cluster.nodes[0].start)
    try:
        worker = workers.start(
            survivor,
            unique("rc_"),
            RISK_KV_REPLICAS="3",
            RISK_EVENTS_REPLICAS="3",
            RISK_INPUTS_REPLICAS="3",
        )

        def retried() -> bool:
            if worker.returncode is not None:
                raise AssertionError(f"worker exited {worker.returncode}{worker.tail()}")
            return "unavailable (attempt 2" in worker.log_path.read_text(errors="replace")

        await wait_for(retried, 30.0, 0.1, f"no second attempt logged{worker.tail()}")
    finally:
        await asyncio.to_thread(cluster.start_node, 1)
        await asyncio.to_thread(cluster.start_node, 2)
    await asyncio.to_thread(cluster.wait_ready)
    nc = await connect(cluster.url)
    try:
        await worker.wait_serving(nc, 60.0)
    finally:
        await nc.close()
    assert worker.returncode is None
    log = worker.log_path.read_text(errors="replace")
    assert "start: RISK_EVENTS: JetStream unavailable (attempt 1" in log, worker.tail()
