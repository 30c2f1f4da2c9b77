"""A fill that the restored snapshot already includes, published again by its producer after
the snapshot (an at-least-once retry), is a duplicate after a restart as it was live: the
replay reads the events before its start for their fill ids (``FILL_LOOKBACK``)."""

from __future__ import annotations

import msgspec
import pytest

from risk_worker.devstack.nats_server import NatsServer
from risk_worker.devstack.redis_server import RedisServer
from tests.harness import start_harness, stop_harness
from tests.integration.test_input_replay import (
    SYMBOL,
    as_producer,
    book_of,
    caught_up_with,
    new_feed,
    opening,
    publish,
    snapshot_at_seq,
)

pytestmark = pytest.mark.timeout(120)


async def test_fill_repeated_after_the_snapshot_is_a_duplicate_after_the_restart(
    own_nats_server: NatsServer, own_redis_server: RedisServer
) -> None:
    url, redis_url, feed = own_nats_server.url, own_redis_server.url, new_feed()
    events = opening(feed)  # a balance, a position, then three fills newer than the position
    # an invalid fill (its id too long): dropped live, and its id never remembered later
    bad_id = "x" * 200
    invalid = (
        "fills.confirmed",
        msgspec.json.encode({**msgspec.json.decode(events[2][1]), "fill_id": bad_id}),
    )
    h = await start_harness(url, redis_url=redis_url)
    try:
        await publish(h.nc, [*events, invalid])
        await caught_up_with(h, feed)
        seq = await snapshot_at_seq(h, redis_url, feed.account)
    finally:
        await stop_harness(h)
    repeated = events[2]  # the first fill, byte for byte: the same fill_id
    await as_producer(url, [repeated, feed.fill("BUY", 0.75, 61_000.0)])

    h = await start_harness(url, redis_url=redis_url)
    try:
        inputs = h.worker.inputs
        assert inputs is not None
        assert inputs.looked_back == seq  # every event before the replay point, ids only
        assert inputs.replayed == 2 and inputs.seq == seq + 2
        assert (
            h.metric("risk_events_ignored_total", kind="fills.confirmed", result="duplicate") == 1
        )
        assert book_of(h.worker.engine, feed.account) == feed.want()  # the fill counted once
        account = h.worker.engine.book.accounts[feed.account]
        assert account.remember_fill(bad_id)  # new to it: the invalid event's id was not kept
        assert (
            book_of(h.worker.engine, feed.account)[2][SYMBOL][0] == 1.0 + 0.5 - 0.25 + 0.125 + 0.75
        )
    finally:
        await stop_harness(h)
