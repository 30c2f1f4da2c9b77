"""A snapshot write exports its accounts a chunk at a time, as it writes them (a real
redis-server): the event loop runs between chunks, and each account is stored as it was when
its chunk was exported, with the input sequence read then."""

from __future__ import annotations

import asyncio
import itertools

import msgspec

from risk_worker.adapters.redis_store import (
    WRITE_CHUNK,
    AccountsToWrite,
    RedisSnapshotStore,
    connect_redis,
)
from risk_worker.devstack.redis_server import RedisServer
from risk_worker.domain.persistence import AccountState, MarkState
from tests.helpers import wait_for
from tests.redis_fixtures import account_state, fresh_prefix, redis_client


def never(accounts: list[AccountState], marks: list[MarkState]) -> None:
    raise AssertionError("restore called although the load at start succeeded")


async def test_write_when_accounts_lazy_then_exported_chunk_by_chunk_as_they_are_at_write(
    redis_server: RedisServer,
) -> None:
    p = fresh_prefix()
    ids = [f"lazy-{i:03d}" for i in range(3 * WRITE_CHUNK + 5)]
    balances = dict.fromkeys(ids, 1_000.0)
    seq = [10]
    turns = [0]  # event-loop turns taken by another task while the write goes on
    exports: list[tuple[int, int]] = []  # (accounts asked, loop turns seen) per call

    def export(chunk: list[str]) -> list[AccountState]:
        exports.append((len(chunk), turns[0]))
        seq[0] += 1  # events applied between two chunks: the later chunk carries them
        return [
            msgspec.structs.replace(account_state(i, balance=balances[i]), inputs_seq=seq[0])
            for i in chunk
            if i in balances
        ]

    async def other_task() -> None:
        while True:
            turns[0] += 1
            await asyncio.sleep(0)

    client = connect_redis(redis_server.url)
    store = RedisSnapshotStore(client, 1.0, key_prefix=p)
    spinner = asyncio.create_task(other_task())
    try:
        await store.load()
        store.submit(AccountsToWrite(ids, export), [], {})
        balances[ids[-1]] = 2_500.0  # changed after the pass, before the write
        del balances[ids[0]]  # left the book before the write
        assert not exports  # nothing exported at submit
        store.start(never)
        await wait_for(lambda: store.writes == 1, message="the submission was not written")

        assert [n for n, _ in exports] == [WRITE_CHUNK] * 3 + [5]
        seen = [t for _, t in exports]
        assert all(b > a for a, b in itertools.pairwise(seen)), seen  # loop ran between
        async with redis_client(redis_server.url) as r:
            assert await r.smembers(f"{p}book:index") == set(ids[1:])
            assert await r.get(f"{p}book:{ids[0]}") is None
            stored = {
                i: msgspec.json.decode(await r.get(f"{p}book:{i}"), type=AccountState)
                for i in ids[1:]
            }
        assert stored[ids[-1]].balance == 2_500.0
        assert stored[ids[-1]].inputs_seq == 14  # the fourth chunk's sequence
        assert stored[ids[1]].inputs_seq == 11
    finally:
        spinner.cancel()
        await store.stop(flush_timeout=0.5)
        await client.aclose()
