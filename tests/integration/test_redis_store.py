"""The Redis snapshot store against a real redis-server: shapes, restore, coalescing, outages."""

from __future__ import annotations

import inspect
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import pytest
from redis.asyncio import Redis

from risk_worker.adapters.redis_store import (
    WRITE_CHUNK,
    RedisSnapshotStore,
    SnapshotStoreError,
    connect_redis,
    flatten_metrics,
)
from risk_worker.devstack.nats_server import free_port
from risk_worker.devstack.redis_server import RedisServer, redis_server_binary
from risk_worker.domain.persistence import AccountState, MarkState
from tests.helpers import wait_for
from tests.redis_fixtures import account_state, fresh_prefix, mark_state, metrics, redis_client

StoreFactory = Callable[..., RedisSnapshotStore]


@pytest.fixture
async def make_store() -> AsyncIterator[StoreFactory]:
    """Builds stores (own client each) for a URL; stops them and closes their clients after."""
    made: list[tuple[RedisSnapshotStore, Redis]] = []

    def make(url: str, interval: float = 1.0, prefix: str = "risk:") -> RedisSnapshotStore:
        client = connect_redis(url)
        store = RedisSnapshotStore(client, interval, key_prefix=prefix)
        made.append((store, client))
        return store

    yield make
    for store, client in reversed(made):
        await store.stop(flush_timeout=0.5)
        await client.aclose()


def ignore_restore(accounts: list[AccountState], marks: list[MarkState]) -> None:
    """A restore callback for tests whose load at start succeeds (it is never called)."""
    raise AssertionError("restore called although the load at start succeeded")


async def started(store: RedisSnapshotStore) -> RedisSnapshotStore:
    await store.load()
    store.start(ignore_restore)
    return store


@pytest.mark.parametrize(("interval", "ttl"), [(1.0, 3), (0.2, 1), (2.5, 8)])
async def test_submit_when_written_then_keys_have_their_shapes_and_snapshots_expire_in_3_intervals(
    redis_server: RedisServer, make_store: StoreFactory, interval: float, ttl: int
) -> None:
    p = fresh_prefix()
    store = await started(make_store(redis_server.url, interval, p))
    acct = account_state("acct-1")

    store.submit(
        [acct], [mark_state("BTCUSDT"), mark_state("ETHUSDT", 2_000.0)], {"acct-1": metrics()}
    )
    await wait_for(lambda: store.writes == 1, message="the submission was not written")

    async with redis_client(redis_server.url) as r:
        assert msgspec.json.decode(await r.get(f"{p}book:acct-1"), type=AccountState) == acct
        assert await r.smembers(f"{p}book:index") == {"acct-1"}
        assert await r.hgetall(f"{p}state:acct-1") == {
            "peak_equity": "12000.0",
            "day_start_equity": "11000.0",
            "trading_day": "20000",
        }
        snapshot = await r.hgetall(f"{p}snapshot:acct-1")
        assert snapshot == flatten_metrics(metrics())
        assert snapshot["margin_ratio"] == ""
        assert snapshot["equity"] == "10500.0"
        assert snapshot["stale_marks"] == "false"
        assert snapshot["risk_level"] == "LOW"
        assert msgspec.json.decode(snapshot["position_concentration"]) == {
            "BTCUSDT": 1.0,
            "ETHUSDT": None,
        }
        assert await r.smembers(f"{p}snapshot:index") == {"acct-1"}
        for key in (f"{p}snapshot:acct-1", f"{p}snapshot:index"):
            assert ttl - 1 <= await r.ttl(key) <= ttl
        for key in (f"{p}book:acct-1", f"{p}book:index", f"{p}state:acct-1", f"{p}marks"):
            assert await r.ttl(key) == -1  # kept until overwritten
        stored_marks = await r.hgetall(f"{p}marks")
        assert msgspec.json.decode(stored_marks["ETHUSDT"], type=MarkState).price == 2_000.0
    assert store.connected is True
    assert store.last_write_ms > 0


async def test_submit_when_more_accounts_than_a_chunk_then_every_one_written_in_several_pipelines(
    redis_server: RedisServer, make_store: StoreFactory
) -> None:
    p = fresh_prefix()
    store = await started(make_store(redis_server.url, 1.0, p))
    n = 2 * WRITE_CHUNK + 7  # three pipelines, the last one short
    ids = [f"acct-{i:03d}" for i in range(n)]
    accounts = [account_state(a) for a in ids]
    marks = [mark_state("BTCUSDT"), mark_state("ETHUSDT", 2_000.0)]

    store.submit(accounts, marks, {a: metrics() for a in ids[:-3]})  # 3 without metrics
    await wait_for(lambda: store.writes == 1, message="the submission was not written")

    async with redis_client(redis_server.url) as r:
        assert await r.smembers(f"{p}book:index") == set(ids)
        assert await r.smembers(f"{p}snapshot:index") == set(ids[:-3])
        stored = await r.mget([f"{p}book:{a}" for a in ids])
        assert [msgspec.json.decode(b, type=AccountState) for b in stored] == accounts
        assert await r.hget(f"{p}state:{ids[-1]}", "peak_equity") == "12000.0"
        assert await r.hgetall(f"{p}snapshot:{ids[-4]}") == flatten_metrics(metrics())
        assert set(await r.hkeys(f"{p}marks")) == {"BTCUSDT", "ETHUSDT"}
    loaded_accounts, loaded_marks = await store.load()
    assert loaded_accounts == accounts
    assert sorted(loaded_marks, key=lambda m: m.symbol) == marks


async def test_submit_when_the_same_metrics_object_again_then_hash_not_rewritten_but_ttl_refreshed(
    redis_server: RedisServer, make_store: StoreFactory
) -> None:
    p = fresh_prefix()
    store = await started(make_store(redis_server.url, 1.0, p))
    published = metrics()
    store.submit([account_state("acct-1")], [], {"acct-1": published})
    await wait_for(lambda: store.writes == 1, message="the submission was not written")
    async with redis_client(redis_server.url) as r:
        await r.hset(f"{p}snapshot:acct-1", "equity", "tampered")
        await r.expire(f"{p}snapshot:acct-1", 1)

        store.submit([account_state("acct-1")], [], {"acct-1": published})  # nothing new
        await wait_for(lambda: store.writes == 2, message="the second submission was not written")
        assert await r.hget(f"{p}snapshot:acct-1", "equity") == "tampered"  # not rewritten
        assert await r.ttl(f"{p}snapshot:acct-1") == 3  # but kept alive

        store.submit([account_state("acct-1")], [], {"acct-1": metrics()})  # a new publication
        await wait_for(lambda: store.writes == 3, message="the third submission was not written")
        assert await r.hgetall(f"{p}snapshot:acct-1") == flatten_metrics(metrics())


async def test_load_when_new_store_then_same_accounts_and_marks_with_state_hash_winning(
    redis_server: RedisServer, make_store: StoreFactory
) -> None:
    p = fresh_prefix()
    writer = await started(make_store(redis_server.url, prefix=p))
    accounts = [account_state("acct-1"), account_state("acct-2", peak=None, day_start=None)]
    marks = [mark_state("BTCUSDT"), mark_state("ETHUSDT", 2_000.0)]
    writer.submit(accounts, marks, {})
    await wait_for(lambda: writer.writes == 1)

    got_accounts, got_marks = await make_store(redis_server.url, prefix=p).load()

    assert sorted(got_accounts, key=lambda a: a.account_id) == accounts
    assert sorted(got_marks, key=lambda m: m.symbol) == marks

    async with redis_client(redis_server.url) as r:  # a state write that the book missed
        await r.hset(f"{p}state:acct-1", mapping={"peak_equity": "15000.5", "trading_day": ""})
    got_accounts, _ = await make_store(redis_server.url, prefix=p).load()
    acct_1 = next(a for a in got_accounts if a.account_id == "acct-1")
    assert (acct_1.peak_equity, acct_1.day_start_equity, acct_1.trading_day) == (
        15_000.5,
        11_000.0,
        None,
    )
    assert acct_1.balance == accounts[0].balance


async def test_submit_when_peak_unchanged_then_state_hash_not_rewritten(
    redis_server: RedisServer, make_store: StoreFactory
) -> None:
    p = fresh_prefix()
    store = await started(make_store(redis_server.url, prefix=p))
    store.submit([account_state(peak=12_000.0)], [], {})
    await wait_for(lambda: store.writes == 1)
    async with redis_client(redis_server.url) as r:
        await r.hset(f"{p}state:acct-1", "peak_equity", "1.0")  # marks what the writer leaves

        store.submit([account_state(peak=12_000.0, balance=9_000.0)], [], {})
        await wait_for(lambda: store.writes == 2)
        assert await r.hget(f"{p}state:acct-1", "peak_equity") == "1.0"

        store.submit([account_state(peak=12_500.0)], [], {})
        await wait_for(lambda: store.writes == 3)
        assert await r.hget(f"{p}state:acct-1", "peak_equity") == "12500.0"


async def test_submit_when_writer_not_running_then_only_the_latest_is_written(
    redis_server: RedisServer, make_store: StoreFactory
) -> None:
    p = fresh_prefix()
    store = make_store(redis_server.url, prefix=p)
    await store.load()
    for balance in (1.0, 2.0, 3.0, 4.0, 5.0):
        store.submit([account_state(balance=balance)], [], {})
    assert (store.writes, store.dropped) == (0, 4)

    store.start(ignore_restore)
    await wait_for(lambda: store.writes == 1)

    async with redis_client(redis_server.url) as r:
        stored = msgspec.json.decode(await r.get(f"{p}book:acct-1"), type=AccountState)
    assert stored.balance == 5.0
    assert (store.writes, store.dropped, store.failures) == (1, 4, 0)


async def test_submit_when_redis_down_then_returns_at_once_and_writes_resume_when_it_is_back(
    own_redis_server: RedisServer, make_store: StoreFactory
) -> None:
    store = await started(make_store(own_redis_server.url, interval=0.2))
    store.submit([account_state(balance=1.0)], [], {"acct-1": metrics()})
    await wait_for(lambda: store.writes == 1)

    own_redis_server.stop()
    result = store.submit([account_state(balance=2.0)], [], {"acct-1": metrics()})
    assert result is None  # a plain call: nothing to await, nothing that waits for Redis
    assert not inspect.iscoroutinefunction(store.submit)
    await wait_for(lambda: store.failures >= 2, message="writes were not retried")
    assert store.connected is False
    store.submit([account_state(balance=3.0)], [], {"acct-1": metrics()})

    own_redis_server.start()
    await wait_for(lambda: store.writes == 2, timeout=5.0, message="writes did not resume")
    assert store.connected is True
    async with redis_client(own_redis_server.url) as r:
        stored = msgspec.json.decode(await r.get("risk:book:acct-1"), type=AccountState)
        assert stored.balance == 3.0
        assert await r.exists("risk:state:acct-1", "risk:snapshot:acct-1") == 2


async def test_load_when_redis_down_at_start_then_late_restore_and_no_lower_peak_written(
    own_redis_server: RedisServer, make_store: StoreFactory
) -> None:
    first = await started(make_store(own_redis_server.url))
    first.submit([account_state(peak=12_000.0)], [], {})
    await wait_for(lambda: first.writes == 1)
    own_redis_server.stop()

    restored: list[list[AccountState]] = []
    store = make_store(own_redis_server.url, interval=0.2)
    with pytest.raises(SnapshotStoreError):
        await store.load()
    store.start(lambda accounts, marks: restored.append(accounts))
    store.submit([account_state(peak=9_000.0, balance=1.0)], [], {})  # a fresh, lower peak

    own_redis_server.start()
    await wait_for(lambda: bool(restored), timeout=5.0, message="no late restore")
    assert [a.peak_equity for a in restored[0]] == [12_000.0]
    assert store.loaded is True
    assert store.dropped == 1  # exported before the restore
    assert store.writes == 0
    async with redis_client(own_redis_server.url) as r:
        assert await r.hget("risk:state:acct-1", "peak_equity") == "12000.0"


async def test_load_when_entries_do_not_decode_then_replayed_from_the_stream_start(
    redis_server: RedisServer, make_store: StoreFactory
) -> None:
    p = fresh_prefix()
    async with redis_client(redis_server.url) as r:
        await r.set(f"{p}book:good", msgspec.json.encode(account_state("good")))
        await r.set(f"{p}book:bad", b'{"account_id": "bad"}')
        await r.hset(f"{p}state:good", "peak_equity", "not a number")
        await r.sadd(f"{p}book:index", "good", "bad", "missing")
        await r.hset(
            f"{p}marks",
            mapping={"BTCUSDT": "[]", "ETHUSDT": msgspec.json.encode(mark_state("ETHUSDT"))},
        )

    accounts, marks = await make_store(redis_server.url, prefix=p).load()

    # ids sorted: "bad" (its book misses fields), "good" (its state hash does not parse: the
    # book's own peaks), "missing" (indexed, no book): the two without a book come back blank
    # and without a sequence, so the restore replays the stream from its start
    assert [a.account_id for a in accounts] == ["bad", "good", "missing"]
    assert accounts[1] == account_state("good")
    for blank in (accounts[0], accounts[2]):
        assert (blank.known, blank.positions, blank.inputs_seq) == (False, [], None)
    assert [m.symbol for m in marks] == ["ETHUSDT"]


async def test_load_when_nothing_listens_then_snapshot_store_error(
    make_store: StoreFactory,
) -> None:
    store = make_store(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(SnapshotStoreError):
        await store.load()
    with pytest.raises(SnapshotStoreError):
        await store.read_snapshots()
    assert store.connected is False


async def test_read_snapshots_when_written_then_every_account_until_they_expire(
    redis_server: RedisServer, make_store: StoreFactory
) -> None:
    p = fresh_prefix()
    store = await started(make_store(redis_server.url, interval=0.2, prefix=p))
    store.submit([], [], {"a": metrics("a"), "b": metrics("b", margin_ratio=4.5)})
    await wait_for(lambda: store.writes == 1)

    snapshots = await store.read_snapshots()

    assert snapshots.keys() == {"a", "b"}
    assert snapshots["b"]["margin_ratio"] == "4.5"
    assert snapshots["a"] == flatten_metrics(metrics("a"))

    async def expired() -> bool:
        return await store.read_snapshots() == {}

    await wait_for(expired, timeout=5.0, message="snapshots did not expire")


def test_restart_when_data_written_then_it_survives_in_the_append_only_file(tmp_path: Path) -> None:
    assert redis_server_binary().is_file()
    with RedisServer(tmp_path) as server:
        port = server.port
        _command(port, b"SET survivor yes\r\n")
        server.restart()
        assert server.port == port
        assert _command(port, b"GET survivor\r\n") == b"$3\r\nyes\r\n"
    assert not server.running
    assert (tmp_path / "appendonly.aof").is_file()


def _command(port: int, line: bytes) -> bytes:
    """Sends one inline command and returns the raw reply (small replies only)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
        sock.sendall(line)
        return sock.recv(256)


async def test_load_when_entries_are_not_json_or_nested_1000_deep_then_not_raised(
    redis_server: RedisServer, make_store: StoreFactory
) -> None:
    p = fresh_prefix()
    nested = "[" * 1000 + "]" * 1000
    async with redis_client(redis_server.url) as r:
        await r.set(f"{p}book:good", msgspec.json.encode(account_state("good")))
        await r.set(f"{p}book:garbage", "not json at all")
        await r.set(f"{p}book:deep", '{"x": ' + nested + "}")
        await r.sadd(f"{p}book:index", "good", "garbage", "deep")
        await r.hset(
            f"{p}marks",
            mapping={
                "BTCUSDT": "{not json",
                "SOLUSDT": nested,
                "ETHUSDT": msgspec.json.encode(mark_state("ETHUSDT")),
            },
        )

    accounts, marks = await make_store(redis_server.url, prefix=p).load()

    # not raised; the undecodable books come back blank, without a sequence (replay from start)
    assert [(a.account_id, a.known, a.inputs_seq) for a in accounts] == [
        ("deep", False, None),
        ("garbage", False, None),
        ("good", True, None),  # (the fixture stores no sequence)
    ]
    assert [m.symbol for m in marks] == ["ETHUSDT"]
