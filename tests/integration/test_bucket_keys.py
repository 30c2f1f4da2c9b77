"""Listing the risk_control bucket's keys (``kv_bucket.bucket_keys``) over a real nats-server:
whole, paged past the server's 100,000 subjects per answer, without a consumer, and with
deleted keys left out of what the operators read (``emergency status``, ``restrict list``).

The listing replaced nats-py's ``KeyValue.keys()``, whose "nothing pending" marker can overtake
its deliveries and end the list short: CI once saw ``emergency status`` miss an account's stop.
"""

from __future__ import annotations

import asyncio

import pytest
from nats.js.api import StorageType

from risk_worker.adapters import operator
from risk_worker.adapters import restricted_list as rl
from risk_worker.adapters.kv_bucket import bucket_keys, open_bucket
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.types import TradingState
from risk_worker.errors import TradingStateError
from tests.helpers import connect, wait_for
from tests.procs import unique

pytestmark = pytest.mark.timeout(60)


async def test_listing_when_keys_deleted_then_named_but_operators_see_only_live_ones(
    nats_server: NatsServer,
) -> None:
    nc = await connect(nats_server.url)
    try:
        bucket = unique("keys")
        kv = await open_bucket(nc.jetstream(), bucket)
        for account in ("A1", "A2", "A3"):
            await operator.trip(nc, bucket, TradingState.HALTED, "drill", "ops", account)
        await kv.delete("trading_state.account.A2")
        await kv.purge("trading_state.account.A3")
        await rl.restrict(nc, bucket, "XUSDT", "sanctioned", "ops")
        await rl.restrict(nc, bucket, "YUSDT", "halted venue", "ops")
        await rl.unrestrict(nc, bucket, "YUSDT", "ops")
        consumers = (await nc.jetstream().stream_info(f"KV_{bucket}")).state.consumer_count

        assert await bucket_keys(nc, bucket, "trading_state.") == [
            "trading_state.account.A1",
            "trading_state.account.A2",
            "trading_state.account.A3",
        ]
        assert await bucket_keys(nc, bucket, "restricted.") == [
            "restricted.XUSDT",
            "restricted.YUSDT",
        ]
        assert await bucket_keys(nc, bucket, "lease.") == []
        rows = await operator.states(nc, bucket, None)
        assert [(k, v is not None) for k, v, _ in rows] == [
            ("trading_state.global", False),
            ("trading_state.account.A1", True),
        ]
        assert [k for k, _, _ in await rl.restrictions(nc, bucket)] == ["restricted.XUSDT"]
        after = (await nc.jetstream().stream_info(f"KV_{bucket}")).state.consumer_count
        assert after == consumers  # no consumer left behind (KeyValue.keys() leaves one a call)
    finally:
        await nc.close()


async def test_listing_when_written_concurrently_then_every_existing_key_each_time(
    nats_server: NatsServer,
) -> None:
    nc = await connect(nats_server.url)
    try:
        bucket = unique("keys")
        kv = await open_bucket(nc.jetstream(), bucket)
        fixed = [f"trading_state.account.F{i}" for i in range(5)]
        for key in fixed:
            await kv.put(key, b'{"state":"HALTED"}')
        stop = asyncio.Event()

        async def writer() -> None:
            n = 0
            while not stop.is_set():
                await kv.put(f"trading_state.symbol.S{n % 50}", b'{"state":"HALTED"}')
                n += 1

        task = asyncio.create_task(writer())
        try:
            for _ in range(100):
                listed = await bucket_keys(nc, bucket, "trading_state.")
                assert set(fixed) <= set(listed), listed
        finally:
            stop.set()
            await task
    finally:
        await nc.close()


async def test_listing_when_more_keys_than_one_answer_holds_then_paged_whole(
    nats_server: NatsServer,
) -> None:
    nc = await connect(nats_server.url)
    try:
        bucket = unique("keys")
        js = nc.jetstream()
        await js.create_key_value(bucket=bucket, history=1, storage=StorageType.MEMORY)
        count = 100_050  # nats-server answers at most 100,000 subjects (JSMaxSubjectDetails)
        for i in range(count):
            await nc.publish(f"$KV.{bucket}.restricted.K{i:06d}", b"{}")
        await nc.flush()

        async def stored() -> bool:
            return (await js.stream_info(f"KV_{bucket}")).state.messages == count

        await wait_for(stored, timeout=20, interval=0.05)
        listed = await bucket_keys(nc, bucket, "restricted.")
        assert len(listed) == count
        assert listed == sorted(f"restricted.K{i:06d}" for i in range(count))
        await js.delete_key_value(bucket)
    finally:
        await nc.close()


async def test_listing_when_no_bucket_then_error_names_it(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    try:
        with pytest.raises(TradingStateError, match="cannot list the keys of 'absent-"):
            await bucket_keys(nc, unique("absent-"))
    finally:
        await nc.close()
