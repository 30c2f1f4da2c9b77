"""Acceptance on recorded market data (skipped when ../shared/data is absent).

The ticks are published by the real ``risk-worker replay`` command in its own process, into a
worker running in this test's event loop.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from nats.aio.msg import Msg

from risk_worker.adapters.kv_bucket import open_bucket, read_state
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.devstack.replay import read_ticks
from risk_worker.domain.trading_state import auto_key
from risk_worker.domain.types import TradingState
from tests.harness import Harness
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory

pytestmark = pytest.mark.shared_data
CLI = str(Path(sys.executable).parent / "risk-worker")
BARS = "coinbase_1m_bars_btcusd_ethusd.csv"
TRADES = "binance_spot_trades_btcusdt_ethusdt_2024-08-08.csv"


def replay(url: str, path: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``risk-worker replay`` against ``url``."""
    env = {**os.environ, "RISK_NATS_URL": url}
    return subprocess.Popen(
        [CLI, "replay", str(path), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


async def finish(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> str:  # noqa: ASYNC109
    """Wait for a replay process without blocking the loop; its output."""
    loop = asyncio.get_running_loop()
    try:
        out, _ = await loop.run_in_executor(None, lambda: proc.communicate(timeout=timeout))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


class Crash(msgspec.Struct):
    """What the 2017-09-04 scenario left behind."""

    long_acct: str
    flat_acct: str
    seen: list[tuple[str, dict[str, Any]]]


async def crash_2017_09_04(h: Harness, shared_data_dir: Path) -> Crash:
    """Replay 2017-09-04 ETHUSD bars (as ETHUSDT) into a worker holding one account long ETH
    at 3x and one flat account; return once the worker has halted the long account."""
    seen: list[tuple[str, dict[str, Any]]] = []

    async def collect(msg: Msg) -> None:
        seen.append((msg.subject, msgspec.json.decode(msg.data)))

    await h.nc.subscribe("risk.>", cb=collect)
    first = read_ticks(
        shared_data_dir / BARS, {"ETHUSD": "ETHUSDT"}, {"ETHUSDT"}, 1504483200000, 1504569600000
    )[0].price  # 353.10 at 00:00 UTC
    long_acct, flat_acct = f"LONG-{uuid.uuid4().hex[:6]}", f"FLAT-{uuid.uuid4().hex[:6]}"
    await h.pnl(long_acct, 100_000.0)
    await h.position(long_acct, "ETHUSDT", 300_000.0 / first, first)  # 3x leverage
    await h.pnl(flat_acct, 100_000.0)
    await h.tick("ETHUSDT", first)
    await h.settle()
    await wait_for(
        lambda: any(s == "risk.metrics" and b["account_id"] == long_acct for s, b in seen),
        message="no metrics before the replay",
    )
    # One day of bars in about two seconds.
    out = await finish(
        replay(
            h.settings.nats_url,
            shared_data_dir / BARS,
            "--symbol-map",
            "ETHUSD=ETHUSDT",
            "--symbol",
            "ETHUSDT",
            "--start",
            "2017-09-04",
            "--end",
            "2017-09-05",
            "--speed",
            "43200",
        )
    )
    assert "published 1440 ticks" in out
    crash = Crash(long_acct, flat_acct, seen)
    await wait_for(lambda: bool(stops(crash)), 5.0, message="the worker never halted the account")
    return crash


def stops(crash: Crash) -> list[dict[str, Any]]:
    """The emergency-stop announcements seen on risk.alerts.emergency."""
    return [
        b
        for s, b in crash.seen
        if s == "risk.alerts.emergency" and b.get("type") == "emergency_stop"
    ]


async def test_replay_2017_09_04_when_long_eth_at_3x_then_worker_halts_it_alone(
    harness_factory: HarnessFactory, shared_data_dir: Path
) -> None:
    h = await harness_factory(monitor_interval=0.05, auto_trip_state=TradingState.HALTED)
    crash = await crash_2017_09_04(h, shared_data_dir)
    long_acct, flat_acct, seen = crash.long_acct, crash.flat_acct, crash.seen
    assert [(b["account_id"], b["source"]) for b in stops(crash)] == [(long_acct, "policy")]
    drawdowns = [
        b["drawdown_max"] for s, b in seen if s == "risk.metrics" and b["account_id"] == long_acct
    ]
    assert max(drawdowns) > 0.25
    flat_metrics = [b for s, b in seen if s == "risk.metrics" and b["account_id"] == flat_acct]
    assert all(b["drawdown_max"] == 0.0 for b in flat_metrics)
    kv = await open_bucket(h.nc.jetstream(), h.settings.kv_bucket)
    value, _ = await read_state(kv, auto_key(long_acct))
    assert value is not None and value.state == "HALTED"
    denied = await h.check(long_acct, "ETHUSDT", "BUY", 1.0)
    assert denied["rejection_reason"] == "emergency_stop_active"
    approved = await h.check(flat_acct, "ETHUSDT", "BUY", 10.0)
    assert approved["approved"] is True, approved
    print(f"\nmax drawdown seen {max(drawdowns):.3f}; emergency stop published")


async def test_replay_2017_09_04_when_database_configured_then_violations_and_stop_recorded(
    migrated_url: str,  # first: the database outlives the worker (teardown is in reverse)
    own_nats_server: NatsServer,
    harness_factory: HarnessFactory,
    shared_data_dir: Path,
) -> None:
    h = await harness_factory(
        url=own_nats_server.url,
        database_url=migrated_url,
        monitor_interval=0.05,
        auto_trip_state=TradingState.HALTED,
    )
    crash = await crash_2017_09_04(h, shared_data_dir)
    conn = await asyncpg.connect(migrated_url)
    try:

        async def recorded() -> bool:
            n = await conn.fetchval(
                "SELECT count(*) FROM emergency_stops WHERE account_id = $1", crash.long_acct
            )
            return bool(n)

        await wait_for(recorded, 10.0, 0.1, "the emergency stop was not recorded")
        stop = await conn.fetchrow(
            "SELECT * FROM emergency_stops WHERE account_id = $1", crash.long_acct
        )
        assert (stop["action"], stop["state"], stop["source"]) == ("trip", "HALTED", "policy")
        snapshot = msgspec.json.decode(stop["account_snapshot"])
        # the snapshot is taken when the watcher sees the trip, the replay running on: the
        # drawdown may have bounced a little; the violation that caused it has the value
        assert snapshot["metrics"]["drawdown_max"] > 0.2
        assert snapshot["positions"][0]["symbol"] == "ETHUSDT"
        halted = await conn.fetch(
            "SELECT policy_name, metric_value FROM risk_violations WHERE account_id = $1 AND "
            "action_taken = 'halted'",
            crash.long_acct,
        )
        assert [r["policy_name"] for r in halted] == ["Emergency Drawdown Stop"]
        assert halted[0]["metric_value"] > 0.25
        alerted = await conn.fetchval(
            "SELECT count(*) FROM risk_violations WHERE account_id = $1 AND source = 'monitor'",
            crash.long_acct,
        )
        assert alerted >= 2  # the drawdown warning and Max Drawdown on the way down
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM risk_violations WHERE account_id = $1", crash.flat_acct
            )
            == 0
        )
    finally:
        await conn.close()


async def test_binance_trades_at_full_speed_when_1000_checks_run_then_every_reply_correct(
    harness_factory: HarnessFactory, shared_data_dir: Path
) -> None:
    # any change of the figures published at the next pass: the last metrics follow the
    # final marks exactly (by default only moves over 0.1 % are, the rest within 5 s)
    harness = await harness_factory(metrics_change_threshold=0.0)
    ticks = read_ticks(shared_data_dir / TRADES)
    lo = {s: min(t.price for t in ticks if t.symbol == s) for s in ("BTCUSDT", "ETHUSDT")}
    hi = {s: max(t.price for t in ticks if t.symbol == s) for s in ("BTCUSDT", "ETHUSDT")}
    last = {t.symbol: t.price for t in ticks}
    big, flat = f"BIG-{uuid.uuid4().hex[:6]}", f"FLT-{uuid.uuid4().hex[:6]}"
    await harness.pnl(big, 1_000_000.0)
    await harness.position(big, "BTCUSDT", 2.0, 61_000.0)
    await harness.position(big, "ETHUSDT", -30.0, 2_600.0)
    await harness.pnl(flat, 1_000_000.0)
    await harness.tick("BTCUSDT", ticks[0].price if ticks[0].symbol == "BTCUSDT" else lo["BTCUSDT"])
    await harness.tick("ETHUSDT", lo["ETHUSDT"])
    await harness.settle()
    metrics: list[dict[str, Any]] = []

    async def on_metrics(msg: Msg) -> None:
        body = msgspec.json.decode(msg.data)
        if body["account_id"] == big:
            metrics.append(body)

    await harness.nc.subscribe("risk.metrics", cb=on_metrics)

    def applied() -> int:
        return int(harness.metric("risk_events_total", kind="market.tick"))

    ticks_before = applied()
    proc = replay(harness.settings.nats_url, shared_data_dir / TRADES, "--speed", "0")
    await wait_for(lambda: applied() > ticks_before + 100, 20.0)

    async def one(i: int) -> None:
        symbol = "BTCUSDT" if i % 2 else "ETHUSDT"
        if i % 4 < 2:  # small market order on a flat account: approved at the current mark
            qty = 0.01
            reply = await harness.check(flat, symbol, "BUY", qty, dry_run=True, detail="full")
            assert reply["approved"] is True, reply
            mark = reply["post_trade_metrics"]["gross_exposure"] / qty
            assert lo[symbol] - 1e-6 <= mark <= hi[symbol] + 1e-6, (symbol, mark)
        else:  # 5,000 BTC / 100,000 ETH: hundreds of times the equity (Max Order Size, 10x)
            qty = 5_000.0 if symbol == "BTCUSDT" else 100_000.0
            reply = await harness.check(big, symbol, "BUY", qty, dry_run=True)
            assert reply["rejection_reason"] == "order_too_large", reply

    try:
        for start in range(0, 1000, 8):
            await asyncio.gather(*(one(i) for i in range(start, start + 8)))
        ticks_during = applied() - ticks_before
    finally:
        await finish(proc)  # a failed check must not leave the replay running
    await wait_for(
        lambda: applied() - ticks_before >= len(ticks),
        20.0,
        message="not every replayed tick was applied",
    )
    expected = 2.0 * (last["BTCUSDT"] - 61_000.0) - 30.0 * (last["ETHUSDT"] - 2_600.0)
    await wait_for(
        lambda: (
            bool(metrics) and metrics[-1]["unrealized_pnl"] == pytest.approx(expected, rel=1e-9)
        ),
        5.0,
        message="risk.metrics did not follow the final marks",
    )
    print(f"\n{len(ticks)} ticks replayed; {ticks_during} applied while the 1000 checks ran")
