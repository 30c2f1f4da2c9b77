"""Audit records reach the RISK_EVENTS stream once each, whatever happens to the publisher."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from risk_worker.adapters import operator
from risk_worker.adapters.event_stream import (
    STREAM,
    EventStreamPublisher,
    ensure_stream,
    subject_of,
)
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.types import TradingState
from risk_worker.wire.audit import StateChangeRecord, ViolationRecord
from tests.harness import ListSink
from tests.helpers import connect, wait_for
from tests.integration.conftest import HarnessFactory


def violation(account: str = "ACC-ES") -> ViolationRecord:
    return ViolationRecord(
        id=str(uuid.uuid4()),
        occurred_at=1,
        account_id=account,
        policy_id="p1",
        policy_name="P",
        policy_type="hard",
        metric="leverage",
        metric_value=None,
        threshold_value=10.0,
        source="pre_trade",
        action_taken="denied",
        order_id="o1",
    )


async def test_publisher_when_same_record_twice_then_stream_stores_it_once(
    own_nats_server: NatsServer,
) -> None:
    nc = await connect(own_nats_server.url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, 3600.0)
        await ensure_stream(js, 7200.0)  # binds and updates the max age, no error
        assert (await js.stream_info(STREAM)).config.max_age == 7200.0
        publisher = EventStreamPublisher(js, queue_size=100)
        publisher.start()
        records = [violation() for _ in range(20)]
        for r in records + records[:5]:  # five published twice (a retry after a lost ack)
            publisher.record(r)
        await publisher.stop()
        assert publisher.published == 25
        info = await js.stream_info(STREAM)
        assert info.state.messages == 20
        msg = await js.get_msg(STREAM, seq=1)
        assert msg.subject == subject_of(records[0]) == "risk.events.violation.ACC-ES"
        assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == records[0].id
        assert msgspec.json.decode(msg.data, type=ViolationRecord) == records[0]
    finally:
        await nc.close()


async def test_publisher_when_queue_full_then_drops_and_counts_without_blocking(
    own_nats_server: NatsServer,
) -> None:
    nc = await connect(own_nats_server.url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, 3600.0)
        publisher = EventStreamPublisher(js, queue_size=10)  # not started: nothing drains
        for _ in range(15):
            publisher.record(violation())
        assert (publisher.depth, publisher.dropped) == (10, 5)
    finally:
        await nc.close()


async def test_trip_and_clear_when_seen_by_worker_then_recorded_once_with_snapshot(
    harness_factory: HarnessFactory,
) -> None:
    sink = ListSink()
    h = await harness_factory(sink=sink)
    await h.pnl("SNAP1", 100_000.0)
    await h.position("SNAP1", "BTCUSDT", 1.0, 50_000.0)
    await h.tick("BTCUSDT", 50_000.0)
    await h.settle()
    bucket = h.settings.kv_bucket
    await operator.trip(h.nc, bucket, TradingState.HALTED, "desk call", "alice", "SNAP1")
    await operator.clear(h.nc, bucket, "resolved", "bob", "SNAP1")
    await operator.trip(h.nc, bucket, TradingState.REDUCING, "wind down", "carol", None)

    def stops() -> list[StateChangeRecord]:
        return [r for r in sink.records if isinstance(r, StateChangeRecord)]

    await wait_for(lambda: len(stops()) == 3, message=f"records: {stops()}")
    trip, clear, global_trip = stops()
    assert (trip.action, trip.state, trip.triggered_by, trip.scope) == (
        "trip",
        "HALTED",
        "alice",
        "account",
    )
    assert (clear.action, clear.state, clear.reason, clear.triggered_by) == (
        "clear",
        "ACTIVE",
        "resolved",
        "bob",
    )
    assert trip.account_snapshot is not None
    assert trip.account_snapshot["metrics"]["equity"] == pytest.approx(100_000.0)
    assert trip.account_snapshot["positions"] == [
        {"symbol": "BTCUSDT", "quantity": 1.0, "entry_price": 50_000.0}
    ]
    assert (global_trip.scope, global_trip.account_id, global_trip.state) == (
        "global",
        None,
        "REDUCING",
    )
    assert global_trip.account_snapshot is not None
    assert "SNAP1" in global_trip.account_snapshot["accounts"]
    assert len({r.id for r in stops()}) == 3
