"""The tick feed over a real nats-server (issue 16): ticks taken from the subscription in batches
without a callback, applied in the order received, an invalid one among valid ones dropped and
counted, every tick received applied before a stop ends; and the same with the callback
fallback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from risk_worker.adapters import tick_feed
from risk_worker.adapters.tick_feed import TickFeed
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.marks import HeldTick
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.service.observability import Metrics
from tests.harness import metric_sum
from tests.helpers import connect, wait_for

ENC = msgspec.json.Encoder()


class RecordingEngine:
    """An engine that records every batch of ticks it is given (a wrapper: the compiled
    decision core's RiskEngine cannot be subclassed by an interpreted class)."""

    def __init__(self) -> None:
        self.engine = RiskEngine(RiskConfig())
        self.batches: list[list[tuple[str, float, int | None]]] = []

    def set_marks(
        self, ticks: Iterable[tuple[str, float, int | None]], now_ms: int
    ) -> list[HeldTick]:
        batch = list(ticks)
        self.batches.append(batch)
        return self.engine.set_marks(batch, now_ms)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


class Feed:
    """A started feed on its own connection ``nc``, and a publisher connection ``pub``."""

    def __init__(
        self, feed: TickFeed, engine: RecordingEngine, metrics: Metrics, nc: Client, pub: Client
    ) -> None:
        self.feed, self.engine, self.metrics, self.nc, self.pub = feed, engine, metrics, nc, pub

    def received(self) -> int:
        """Messages the feed's connection has received (only the feed subscribes on it)."""
        return int(self.nc.stats["in_msgs"])

    def count(self, name: str, **labels: str) -> float:
        return metric_sum(self.metrics.registry, name, kind="market.tick", **labels)

    async def tick(self, symbol: str, body: dict[str, object] | bytes) -> None:
        data = body if isinstance(body, bytes) else ENC.encode(body)
        await self.pub.publish(f"market.tick.{symbol}", data)


FeedFactory = Callable[..., Awaitable[Feed]]


@pytest.fixture
async def make_feed(nats_server: NatsServer) -> AsyncIterator[FeedFactory]:
    """Start feeds (``max_batch`` given); each is stopped and its connections closed after."""
    opened: list[Feed] = []

    async def make(max_batch: int = tick_feed.MAX_BATCH) -> Feed:
        nc, pub = await connect(nats_server.url), await connect(nats_server.url)
        engine, metrics = RecordingEngine(), Metrics()

        async def publish(subject: str, message: msgspec.Struct) -> None:
            await nc.publish(subject, ENC.encode(message))

        feed = TickFeed(nc, engine, metrics, publish, max_batch)  # type: ignore[arg-type]
        await feed.start()
        # twice: nats-py 2.16 writes flush's PING ahead of a SUB still buffered, so one flush
        # can return before the server has the subscription (ticks published then are lost)
        await nc.flush()
        await nc.flush()
        made = Feed(feed, engine, metrics, nc, pub)
        opened.append(made)
        return made

    yield make
    for made in opened:
        await made.feed.stop()
        await made.pub.close()
        await made.nc.close()


def symbols() -> list[str]:
    """Three symbols of this test alone (the server is shared)."""
    tag = uuid.uuid4().hex[:6].upper()
    return [f"T{tag}{i}" for i in range(3)]


async def test_ticks_when_a_burst_then_taken_in_batches_and_applied_in_order_per_symbol(
    make_feed: FeedFactory,
) -> None:
    f = await make_feed(max_batch=64)
    names = symbols()
    sent: dict[str, list[float]] = {s: [] for s in names}
    for k in range(3_000):
        symbol, price = names[k % 3], 100.0 + k * 0.001  # within the jump band
        sent[symbol].append(price)
        await f.tick(symbol, {"price": price, "timestamp": 1_700_000_000_000 + k})
    await f.pub.flush()
    await wait_for(lambda: f.count("risk_events_total") == 3_000, 10.0, message="ticks missing")
    applied = [tick for batch in f.engine.batches for tick in batch]
    for symbol in names:
        assert [p for s, p, _ in applied if s == symbol] == sent[symbol]
        assert f.engine.book.marks[symbol].price == sent[symbol][-1]
    assert max(map(len, f.engine.batches)) > 1, "every message was taken alone"
    assert max(map(len, f.engine.batches)) <= 64
    assert f.engine.book.marks[names[2]].timestamp == 1_700_000_000_000 + 2_999


async def test_ticks_when_invalid_among_valid_then_dropped_counted_and_the_rest_applied(
    make_feed: FeedFactory,
) -> None:
    f = await make_feed()
    symbol = symbols()[0]
    await f.tick(symbol, {"price": 10.0})
    await f.tick(symbol, b"not json")
    await f.tick(symbol, {"price": -1.0})
    await f.tick(symbol, {"symbol": "OTHER", "price": 11.0})
    await f.tick(symbol, {"timestamp": 1})
    await f.tick("A#B", {"price": 12.0})
    await f.tick(symbol, {"bid": 10.0, "ask": 10.5})
    await f.pub.flush()
    await wait_for(
        lambda: f.count("risk_events_total") + f.count("risk_events_invalid_total") == 7,
        5.0,
        message="ticks missing",
    )
    assert f.count("risk_events_total") == 2
    invalid = {
        reason: f.count("risk_events_invalid_total", reason=reason)
        for reason in ("malformed_json", "out_of_range", "missing_field", "bad_identifier")
    }
    assert invalid == {
        "malformed_json": 1,
        "out_of_range": 2,
        "missing_field": 1,
        "bad_identifier": 1,
    }
    assert f.engine.book.marks[symbol].price == 10.25
    assert "A#B" not in f.engine.book.marks


async def test_feed_when_stopped_with_a_backlog_then_every_tick_received_is_applied_first(
    make_feed: FeedFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = asyncio.Event()
    handle = TickFeed._handle

    async def gated(feed: TickFeed, batch: list[Msg]) -> None:
        await gate.wait()  # the first batch waits: the rest piles up in the subscription
        await handle(feed, batch)

    monkeypatch.setattr(TickFeed, "_handle", gated)
    f = await make_feed()
    symbol = symbols()[0]
    for k in range(5_000):
        await f.tick(symbol, {"price": 50.0 + k * 0.001})
    await wait_for(lambda: f.received() == 5_000, 10.0, message="ticks not delivered")
    stopping = asyncio.create_task(f.feed.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done(), "the stop did not wait for the backlog"
    assert f.count("risk_events_total") == 0
    gate.set()
    await asyncio.wait_for(stopping, 10.0)
    assert f.count("risk_events_total") == 5_000
    assert f.engine.book.marks[symbol].price == 50.0 + 4_999 * 0.001
    await f.tick(symbol, {"price": 60.0})  # unsubscribed: no longer applied
    await f.pub.flush()
    assert f.engine.book.marks[symbol].price != 60.0


async def test_feed_when_nats_py_has_no_pending_queue_then_ticks_by_callback_alike(
    make_feed: FeedFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tick_feed, "pending_queue", lambda sub: None)
    f = await make_feed()
    symbol = symbols()[0]
    for k in range(200):
        await f.tick(symbol, {"price": 20.0 + k * 0.01})
    await f.tick(symbol, b"{}")
    await wait_for(lambda: f.received() == 201, 10.0, message="ticks not delivered")
    await f.feed.stop()
    assert f.count("risk_events_total") == 200
    assert f.count("risk_events_invalid_total", reason="missing_field") == 1
    assert f.engine.book.marks[symbol].price == 20.0 + 199 * 0.01
    assert {len(batch) for batch in f.engine.batches} == {1}
