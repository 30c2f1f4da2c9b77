"""The monitor lease logs a normal acquisition at INFO and a loss at WARNING."""

from __future__ import annotations

import logging

import msgspec
import pytest

from risk_worker.adapters.lease import LEASE_KEY, Lease, LeaseValue
from risk_worker.devstack.nats_server import NatsServer
from tests.helpers import connect
from tests.procs import unique


async def test_lease_when_acquired_then_info_and_when_lost_then_warning(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await connect(nats_server.url)
    try:
        kv = await nc.jetstream().create_key_value(bucket=unique("lease_"))
        lease = Lease(kv, "worker-a", ttl=3.0)

        with caplog.at_level(logging.INFO, logger="risk_worker.adapters.lease"):
            assert await lease.renew()
            assert await lease.renew()  # held still: nothing more to say
            far = 2**62  # ms since epoch: another holder's lease that will not expire
            await kv.put(LEASE_KEY, msgspec.json.encode(LeaseValue("worker-b", far)))
            assert not await lease.renew()
    finally:
        await nc.close()

    records = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "risk_worker.adapters.lease"
    ]
    assert records == [
        (logging.INFO, "acquired the monitor lease (worker-a)"),
        (logging.WARNING, "lost the monitor lease (worker-a)"),
    ]
