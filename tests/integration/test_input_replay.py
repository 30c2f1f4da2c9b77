"""Issue 14, part 3: a restart loses no account event (the ``RISK_INPUTS`` stream).

Each test compares the restarted worker's book with an engine that applied the same events
once, live: exact balances and quantities, so an event applied twice or skipped shows.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client

from risk_worker.adapters.input_stream import STREAM as INPUTS
from risk_worker.adapters.input_stream import ensure_inputs_stream
from risk_worker.adapters.redis_store import connect_redis
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.devstack.redis_server import RedisServer
from risk_worker.domain.engine import RiskEngine
from risk_worker.errors import InvalidMessageError
from risk_worker.service.worker import Worker
from risk_worker.wire import inbound
from tests.harness import Harness, settings_for, start_harness, stop_harness
from tests.helpers import connect, wait_for

pytestmark = pytest.mark.timeout(120)

ENC = msgspec.json.Encoder()
N = 120_000
"""Fills waiting in the stream at the start: a replay of several seconds (20-25k events/s)."""
SYMBOL = "BTCUSDT"
Book = tuple[float, float, dict[str, tuple[float, float]]]


class Feed:
    """Events for one account with increasing timestamps, and the book they make live."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.ts = time.time_ns() // 1_000_000 - 60_000
        self.expected = RiskEngine(settings_for("nats://unused").risk_config())
        self.sent: list[tuple[str, bytes]] = []

    def _next(self, subject: str, body: dict[str, Any]) -> tuple[str, bytes]:
        self.ts += 1
        data = ENC.encode({**body, "account_id": self.account, "timestamp": self.ts})
        self._apply(subject, data)
        return subject, data

    def _apply(self, subject: str, data: bytes) -> None:
        try:
            if subject == "pnl.update":
                self.expected.apply_pnl(inbound.parse_pnl(data))
            elif subject == "positions.update":
                self.expected.apply_position(inbound.parse_position(data))
            else:
                self.expected.apply_fill(inbound.parse_fill(data))
        except InvalidMessageError:
            pass

    def pnl(self, balance: float) -> tuple[str, bytes]:
        """A ``pnl.update``."""
        return self._next("pnl.update", {"balance": balance})

    def position(self, qty: float, entry: float) -> tuple[str, bytes]:
        """A ``positions.update`` of SYMBOL."""
        return self._next(
            "positions.update", {"symbol": SYMBOL, "quantity": qty, "entry_price": entry}
        )

    def fill(self, side: str, qty: float, price: float, fee: float = 1.5) -> tuple[str, bytes]:
        """A ``fills.confirmed`` of SYMBOL with a fresh fill id."""
        body = {
            "fill_id": uuid.uuid4().hex,
            "order_id": uuid.uuid4().hex,
            "symbol": SYMBOL,
            "side": side,
            "quantity": qty,
            "price": price,
            "fee": fee,
        }
        return self._next("fills.confirmed", body)

    def want(self) -> Book:
        """The book the events make when each is applied once."""
        return book_of(self.expected, self.account)


def book_of(engine: RiskEngine, account: str) -> Book:
    """(balance, realized PnL, {symbol: (quantity, entry price)}) of one account."""
    acct = engine.book.accounts.get(account)
    if acct is None:
        return (float("nan"), float("nan"), {})
    positions = {s: (p.quantity, p.entry_price) for s, p in acct.positions.items()}
    return (acct.balance, acct.realized_pnl, positions)


async def publish(nc: Client, events: list[tuple[str, bytes]]) -> None:
    """Publish plain core-NATS messages, as a producer does, and flush."""
    for subject, data in events:
        await nc.publish(subject, data)
    await nc.flush()


async def as_producer(url: str, events: list[tuple[str, bytes]]) -> None:
    """Publish from a connection of its own (every worker may be down); the stream exists
    (a worker created it before)."""
    nc = await connect(url)
    try:
        await ensure_inputs_stream(nc.jetstream(), 86_400.0, 1)  # as a worker's first start did
        await publish(nc, events)
    finally:
        await nc.close()


async def caught_up_with(h: Harness, feed: Feed, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Wait until the worker's book of the feed's account is what the feed expects."""
    await wait_for(
        lambda: book_of(h.worker.engine, feed.account) == feed.want(),
        timeout,
        message=f"book {book_of(h.worker.engine, feed.account)} != {feed.want()}",
    )


async def stored(redis_url: str, account: str) -> dict[str, Any] | None:
    """The account's stored ``risk:book:{account}`` JSON."""
    client = connect_redis(redis_url)
    try:
        raw = await client.get(f"risk:book:{account}")
    finally:
        await client.aclose()
    return None if raw is None else dict(json.loads(raw))


async def snapshot_at_seq(h: Harness, redis_url: str, account: str) -> int:
    """Wait until Redis holds the account with the worker's current inputs sequence."""
    assert h.worker.inputs is not None
    seq = h.worker.inputs.seq

    async def written() -> bool:
        book = await stored(redis_url, account)
        return book is not None and book.get("inputs_seq") == seq

    await wait_for(written, 5.0, message=f"no snapshot of {account} at sequence {seq}")
    return seq


async def stored_in_stream(url: str, count: int) -> None:
    """Wait until ``RISK_INPUTS`` holds ``count`` messages (it stores a burst a little later)."""
    nc = await connect(url)
    try:
        js = nc.jetstream()

        async def stored() -> bool:
            return bool((await js.stream_info(INPUTS)).state.messages >= count)

        await wait_for(stored, 10.0, message=f"RISK_INPUTS never held {count} messages")
    finally:
        await nc.close()


def new_feed() -> Feed:
    return Feed(f"RPL-{uuid.uuid4().hex[:8]}")


def opening(feed: Feed) -> list[tuple[str, bytes]]:
    """A balance, a position and three fills."""
    return [
        feed.pnl(100_000.0),
        feed.position(1.0, 60_000.0),
        feed.fill("BUY", 0.5, 60_100.0),
        feed.fill("SELL", 0.25, 60_300.0),
        feed.fill("BUY", 0.125, 59_900.0),
    ]


async def test_fill_published_while_every_worker_was_down_is_applied_once_after_the_snapshot(
    own_nats_server: NatsServer, own_redis_server: RedisServer
) -> None:
    url, feed = own_nats_server.url, new_feed()
    h = await start_harness(url, redis_url=own_redis_server.url)
    try:
        await publish(h.nc, opening(feed))
        await caught_up_with(h, feed)
        seq = await snapshot_at_seq(h, own_redis_server.url, feed.account)
    finally:
        await stop_harness(h)
    await as_producer(url, [feed.fill("BUY", 0.75, 61_000.0), feed.fill("SELL", 0.0625, 61_200.0)])

    h = await start_harness(url, redis_url=own_redis_server.url)
    try:
        assert h.worker.inputs is not None
        assert h.worker.inputs.replayed == 2  # only what came after the snapshot's sequence
        assert h.worker.inputs.seq == seq + 2
        assert book_of(h.worker.engine, feed.account) == feed.want()  # exact: none twice
        qty = book_of(h.worker.engine, feed.account)[2][SYMBOL][0]
        assert qty == 1.0 + 0.5 - 0.25 + 0.125 + 0.75 - 0.0625
        assert h.worker.engine.book.accounts[feed.account].known
    finally:
        await stop_harness(h)


async def test_restart_without_redis_rebuilds_the_book_from_the_stream_start(
    own_nats_server: NatsServer,
) -> None:
    url, feed = own_nats_server.url, new_feed()
    h = await start_harness(url)
    try:
        await publish(h.nc, opening(feed))
        await caught_up_with(h, feed)
    finally:
        await stop_harness(h)
    await as_producer(url, [feed.fill("BUY", 2.0, 62_000.0)])

    h = await start_harness(url)
    try:
        assert h.worker.inputs is not None and h.worker.inputs.replayed == 6
        assert book_of(h.worker.engine, feed.account) == feed.want()
        reply = await h.check(feed.account, SYMBOL, "SELL", 0.1, 62_000.0, dry_run=True)
        assert reply["rejection_reason"] is None, reply  # no tick needed: a limit price
    finally:
        await stop_harness(h)


async def test_snapshot_with_an_invalid_inputs_seq_is_restored_peak_only_and_replayed_whole(
    own_nats_server: NatsServer, own_redis_server: RedisServer
) -> None:
    url, redis_url, feed = own_nats_server.url, own_redis_server.url, new_feed()
    h = await start_harness(url, redis_url=redis_url)
    try:
        await publish(h.nc, opening(feed))
        await caught_up_with(h, feed)
        await snapshot_at_seq(h, redis_url, feed.account)
    finally:
        await stop_harness(h)
    book = await stored(redis_url, feed.account)
    assert book is not None
    client = connect_redis(redis_url)
    try:
        for bad in ("12", 1.5, -1, 2**64, 10**6):  # a string, a float, out of range, too far
            await client.set(f"risk:book:{feed.account}", json.dumps({**book, "inputs_seq": bad}))
            h = await start_harness(url, redis_url=redis_url)
            try:
                assert book_of(h.worker.engine, feed.account) == feed.want(), bad
                assert h.metric("risk_snapshot_refused_total", kind="inputs_seq") == 1, bad
                assert h.metric("risk_snapshot_refused_total", kind="account") == 0, bad
                await snapshot_at_seq(h, redis_url, feed.account)  # rewritten, valid
            finally:
                await stop_harness(h)
            book = await stored(redis_url, feed.account)
    finally:
        await client.aclose()


async def test_snapshot_missing_one_account_book_replays_the_stream_from_its_start(
    own_nats_server: NatsServer, own_redis_server: RedisServer
) -> None:
    """An account indexed in Redis whose book is gone (evicted, deleted) is rebuilt from all
    of its events, not from the other accounts' sequence on (which would give it only the
    fill published while the workers were down)."""
    url, redis_url, kept, lost = own_nats_server.url, own_redis_server.url, new_feed(), new_feed()
    h = await start_harness(url, redis_url=redis_url)
    try:
        await publish(h.nc, opening(lost) + opening(kept))
        await caught_up_with(h, lost)
        await caught_up_with(h, kept)
        await snapshot_at_seq(h, redis_url, lost.account)
        await snapshot_at_seq(h, redis_url, kept.account)
    finally:
        await stop_harness(h)
    client = connect_redis(redis_url)
    try:
        assert await client.delete(f"risk:book:{lost.account}") == 1
    finally:
        await client.aclose()
    await as_producer(url, [lost.fill("BUY", 0.75, 61_000.0)])

    h = await start_harness(url, redis_url=redis_url)
    try:
        assert book_of(h.worker.engine, lost.account) == lost.want()  # every event, once
        assert book_of(h.worker.engine, kept.account) == kept.want()  # its own skipped
    finally:
        await stop_harness(h)


async def test_checks_are_denied_book_replaying_until_the_replay_caught_up(
    own_nats_server: NatsServer,
) -> None:
    url, feed = own_nats_server.url, new_feed()
    events = [feed.pnl(1_000_000.0), feed.position(1.0, 60_000.0)]
    events += [feed.fill("BUY" if i % 2 else "SELL", 0.001, 60_000.0, 0.0) for i in range(N)]
    await as_producer(url, events)  # while no worker runs: the stream keeps them
    await stored_in_stream(url, len(events))

    worker = Worker(settings_for(url))
    nc = await connect(url)
    replies: list[tuple[bool, dict[str, Any]]] = []
    try:
        await worker.start()
        assert worker.inputs is not None
        inputs = worker.inputs
        assert worker.readiness()["inputs"] == "replaying"
        body = {"account_id": feed.account, "symbol": SYMBOL, "side": "SELL", "quantity": 0.1}
        while not inputs.caught_up:
            order = ENC.encode({**body, "order_id": uuid.uuid4().hex, "price": 60_000.0})
            msg = await nc.request("risk.check.order", order, timeout=2.0)
            replies.append((inputs.caught_up, json.loads(msg.data)))
        before = [r for done, r in replies if not done]
        assert before, "the replay ended before a check was answered"
        assert {r["rejection_reason"] for r in before} == {"book_replaying"}
        assert not any(r["approved"] for r in before)
        assert book_of(worker.engine, feed.account) == feed.want()
        assert worker.inputs.replayed == len(events)
        assert worker.readiness()["inputs"] == "caught_up"
        await wait_for(worker.watcher.confirmed if worker.watcher else lambda: False, 5.0)
        order = ENC.encode({**body, "order_id": uuid.uuid4().hex, "price": 60_000.0})
        after = json.loads((await nc.request("risk.check.order", order, timeout=2.0)).data)
        assert after["approved"], after
    finally:
        await nc.close()
        await asyncio.wait_for(worker.stop(), 60.0)


async def test_malformed_events_in_the_stream_are_dropped_and_counted_once(
    own_nats_server: NatsServer,
) -> None:
    url, feed = own_nats_server.url, new_feed()
    await as_producer(
        url,
        [
            feed.pnl(50_000.0),
            ("pnl.update", b"not json"),
            ("fills.confirmed", ENC.encode({"account_id": feed.account, "quantity": 1})),
            feed.position(2.0, 3_000.0),
            ("positions.update", b'{"account_id": "' + b"x" * 300 + b'"}'),
            feed.fill("SELL", 0.5, 3_100.0),
        ],
    )
    h = await start_harness(url)
    try:
        assert book_of(h.worker.engine, feed.account) == feed.want()
        assert h.metric("risk_events_invalid_total") == 3
        assert h.worker.inputs is not None and h.worker.inputs.replayed == 6
    finally:
        await stop_harness(h)


async def test_nats_server_restart_when_worker_running_then_no_event_is_lost(
    own_nats_server: NatsServer,
) -> None:
    server, feed = own_nats_server, new_feed()
    h = await start_harness(server.url)
    try:
        await publish(h.nc, opening(feed))
        await caught_up_with(h, feed)
        server.kill()
        await asyncio.to_thread(server.start)
        # published as soon as the server is back: before the worker's consumer is recreated
        await as_producer(server.url, [feed.fill("BUY", 0.3, 60_500.0) for _ in range(5)])
        await caught_up_with(h, feed, timeout=15.0)
        assert h.worker.inputs is not None and h.worker.inputs.seq == 10
        await as_producer(server.url, [feed.fill("SELL", 0.2, 60_400.0)])
        await caught_up_with(h, feed)
    finally:
        await stop_harness(h)
