"""Replayed ticks arrive on `market.tick.<symbol>` as JSON, fast or at the recorded pace."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from nats.aio.msg import Msg

from risk_worker.devstack.nats_server import NatsServer
from risk_worker.devstack.replay import ReplayTick, publish_ticks
from tests.helpers import connect, wait_for

TICKS = [
    ReplayTick("BTCUSDT", 61837.63, 1_723_161_255_342),
    ReplayTick("ETHUSDT", 2683.8, 1_723_161_256_342),
    ReplayTick("BTCUSDT", 61837.64, 1_723_161_257_342),
]


async def receive_replay(
    nats_server: NatsServer, speed: float | None
) -> tuple[list[tuple[str, dict[str, object], float]], list[int], int]:
    """Publishes TICKS at `speed` and returns (subject, payload, arrival time), progress, count."""
    received: list[tuple[str, dict[str, object], float]] = []
    progress: list[int] = []
    loop = asyncio.get_running_loop()

    probes: list[bytes] = []

    async def on_msg(msg: Msg) -> None:
        if msg.subject == "market.tick.PROBE":
            probes.append(msg.data)
            return
        received.append((msg.subject, msgspec.json.decode(msg.data), loop.time()))

    sub_nc = await connect(nats_server.url)
    pub_nc = await connect(nats_server.url)
    try:
        await sub_nc.subscribe("market.tick.*", cb=on_msg)
        await sub_nc.flush()

        # Prove the path publisher → server → subscriber is live before measuring.
        async def probe_arrived() -> bool:
            await pub_nc.publish("market.tick.PROBE", b"{}")
            await pub_nc.flush()
            return bool(probes)

        await wait_for(probe_arrived, 5.0, 0.05, "the subscription never became live")
        count = await publish_ticks(pub_nc, TICKS, speed, on_progress=progress.append)
        await wait_for(lambda: len(received) >= len(TICKS), message=f"got {received}")
    finally:
        await pub_nc.close()
        await sub_nc.close()
    return received, progress, count


async def test_publish_ticks_when_as_fast_as_possible_then_subscriber_gets_each_as_json(
    nats_server: NatsServer,
) -> None:
    received, progress, count = await receive_replay(nats_server, speed=None)

    assert count == 3
    assert progress[-1] == 3
    assert [(subject, payload) for subject, payload, _ in received] == [
        (
            f"market.tick.{tick.symbol}",
            {"symbol": tick.symbol, "price": tick.price, "timestamp": tick.timestamp},
        )
        for tick in TICKS
    ]


async def test_publish_ticks_when_speed_10_then_recorded_spacing_is_divided_by_10(
    nats_server: NatsServer,
) -> None:
    received, _, count = await receive_replay(nats_server, speed=10)

    assert count == 3
    arrivals = [arrived for _, _, arrived in received]
    # 2 s recorded at 10x: at least 0.2 s between first and last (minus timer slack).
    assert arrivals[-1] - arrivals[0] >= 0.19


async def test_publish_ticks_when_speed_negative_then_raises(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    try:
        with pytest.raises(ValueError, match="speed must be"):
            await publish_ticks(nc, TICKS, speed=-1)
    finally:
        await nc.close()
