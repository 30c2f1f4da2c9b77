"""Redis keeps what events cannot rebuild: a restart never resets a drawdown or the gate."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from risk_worker.devstack.nats_server import NatsServer
from risk_worker.devstack.redis_server import RedisServer
from risk_worker.devstack.replay import publish_ticks, read_ticks
from risk_worker.domain.types import TradingState
from tests.harness import start_harness, stop_harness
from tests.helpers import wait_for

BARS = "coinbase_1m_bars_btcusd_ethusd.csv"
DAY = (1504483200000, 1504569600000)  # 2017-09-04 UTC


async def test_restart_mid_2017_09_04_replay_when_redis_then_drawdown_continues_and_halt_stays(
    own_nats_server: NatsServer, own_redis_server: RedisServer, shared_data_dir: Path
) -> None:
    ticks = read_ticks(shared_data_dir / BARS, {"ETHUSD": "ETHUSDT"}, {"ETHUSDT"}, *DAY)
    first = ticks[0].price
    # Before 07:00 UTC the account is down a few per cent; the crash comes after.
    midday = next(i for i, t in enumerate(ticks) if t.timestamp >= DAY[0] + 7 * 3_600_000)
    settings: dict[str, Any] = {
        "redis_url": own_redis_server.url,
        "monitor_interval": 0.05,
        "kv_bucket": "risk_control",
        "auto_trip_state": TradingState.HALTED,
    }
    account = f"LONG-{uuid.uuid4().hex[:6]}"
    h = await start_harness(own_nats_server.url, **settings)
    try:
        metrics = await h.collect("risk.metrics")
        await h.pnl(account, 100_000.0)
        await h.position(account, "ETHUSDT", 300_000.0 / first, first)  # 3x leverage
        await h.tick("ETHUSDT", first)
        await h.settle()
        await wait_for(lambda: any(m["account_id"] == account for m in metrics))
        await publish_ticks(h.nc, ticks[:midday], speed=None)  # the early morning, at full speed
        await wait_for(
            lambda: h.worker.engine.book.marks["ETHUSDT"].price == ticks[midday - 1].price, 5.0
        )
        await asyncio.sleep(0.2)  # a few monitor passes write the snapshot: time is the point
        before = [m for m in metrics if m["account_id"] == account][-1]
        assert before["peak_equity"] > before["equity"]
    finally:
        await stop_harness(h)

    h = await start_harness(own_nats_server.url, **settings)  # the restart
    try:
        metrics = await h.collect("risk.metrics")
        await wait_for(lambda: any(m["account_id"] == account for m in metrics), 5.0)
        after = next(m for m in metrics if m["account_id"] == account)
        assert after["peak_equity"] == before["peak_equity"]  # not reset to today's equity
        assert after["drawdown_max"] == before["drawdown_max"] > 0.0
        reply = await h.check(account, "ETHUSDT", "SELL", 1.0, dry_run=True)  # answers at once
        assert reply["rejection_reason"] is None, reply
        stops = await h.collect("risk.alerts.emergency")
        await publish_ticks(h.nc, ticks[midday:], speed=None)  # the crash
        await wait_for(
            lambda: any(s.get("type") == "emergency_stop" for s in stops),
            10.0,
            message="the account was not halted after the restart",
        )
        peak = after["peak_equity"]
        await wait_for(
            lambda: [m for m in metrics if m["account_id"] == account][-1]["drawdown_max"] > 0.25,
            5.0,
        )
        halted_dd = [m for m in metrics if m["account_id"] == account][-1]["drawdown_max"]
    finally:
        await stop_harness(h)

    h = await start_harness(own_nats_server.url, **settings)  # and again: still halted
    try:
        metrics = await h.collect("risk.metrics")
        await wait_for(lambda: any(m["account_id"] == account for m in metrics), 5.0)
        again = next(m for m in metrics if m["account_id"] == account)
        assert again["peak_equity"] == peak
        assert again["drawdown_max"] == halted_dd
        assert again["trading_state"] == "HALTED"
        reply = await h.check(account, "ETHUSDT", "BUY", 1.0, dry_run=True)
        assert reply["rejection_reason"] == "emergency_stop_active"
    finally:
        await stop_harness(h)
    print(
        f"\npeak {peak:,.0f} kept across two restarts; drawdown {before['drawdown_max']:.3f} "
        f"at the first restart, {halted_dd:.3f} when halted"
    )


async def test_redis_down_20s_when_checks_run_then_latency_unchanged_and_snapshots_resume(
    own_nats_server: NatsServer, own_redis_server: RedisServer
) -> None:
    h = await start_harness(
        own_nats_server.url, redis_url=own_redis_server.url, monitor_interval=0.2
    )
    try:
        await h.pnl("REDIS1", 100_000.0)
        await h.tick("BTCUSDT", 50_000.0)
        await h.settle()
        assert h.worker.snapshots is not None
        store = h.worker.snapshots.store

        async def checks(n: int) -> list[float]:
            out = []
            for _ in range(n):
                started = time.perf_counter()
                reply = await h.check("REDIS1", "BTCUSDT", "BUY", 0.1, 50_000.0, dry_run=True)
                out.append(time.perf_counter() - started)
                assert reply["approved"], reply
            return out

        await wait_for(lambda: store.writes >= 2, 5.0, message="no snapshot written")
        normal = await checks(500)
        own_redis_server.stop()
        outage: list[float] = []
        end = time.monotonic() + 20.0
        while time.monotonic() < end:
            outage += await checks(50)
            await asyncio.sleep(0.5)
        assert store.failures >= 1 and not store.connected
        writes_before = store.writes
        own_redis_server.start()
        await wait_for(
            lambda: store.writes > writes_before + 1, 10.0, message="snapshots did not resume"
        )
        snapshots = await store.read_snapshots()
        assert snapshots["REDIS1"]["equity"] == "100000.0"
    finally:
        await stop_harness(h)
    us = 1e6
    print(
        f"\ncheck round trip: normal p50 {statistics.median(normal) * us:.0f} µs, "
        f"with Redis down p50 {statistics.median(outage) * us:.0f} µs, "
        f"max {max(outage) * us:.0f} µs ({len(outage)} checks)"
    )
