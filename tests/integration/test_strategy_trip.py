"""The workers' automatic trip of one strategy of one account over a real nats-server
(``trading_state.auto.<account>.strategy.<strategy>``, issue 13 §2): a worker process denies
that strategy's orders on that account only, announces a HALT's cancel instruction with both
ids, and the operator CLI shows and clears it; the audit row keeps both ids (migration 0005).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import pytest
from nats.aio.msg import Msg

from risk_worker.adapters import operator
from risk_worker.adapters.kv_bucket import open_bucket, read_state, write_state
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.trading_state import StateValue, auto_strategy_key
from risk_worker.domain.types import StateSource, TradingState
from risk_worker.wire.outbound import CANCEL_ALL_SUBJECT
from tests.harness import start_harness, stop_harness
from tests.helpers import connect, wait_for
from tests.procs import (
    Workers,
    check,
    fund,
    risk_env,
    run_cli,
    unique,
    wait_approved,
    wait_denied,
)

pytestmark = pytest.mark.timeout(90)

MOMO = "momo-1"


def trip(state: TradingState, by: str = "worker-7") -> StateValue:
    """What a worker's automatic trip of a strategy writes."""
    return StateValue(state, f"strategy loss ({state})", by, 1, StateSource.POLICY)


async def test_strategy_trip_when_put_then_only_its_orders_on_its_account_held_and_cli_clears(
    own_nats_server: NatsServer, workers: Workers
) -> None:
    url = own_nats_server.url
    worker = workers.start(
        url, RISK_MONITOR_INTERVAL="0.2", RISK_LEASE_TTL="1.0", RISK_METRICS_MAX_INTERVAL="0.4"
    )  # every account's risk.metrics at least every 0.4 s: they tell that the lease is held
    env = risk_env(url, worker.bucket)
    nc = await connect(url)
    seen: list[dict[str, Any]] = []
    metrics: list[str] = []

    async def keep(msg: Msg) -> None:
        seen.append(msgspec.json.decode(msg.data))

    async def published(msg: Msg) -> None:
        metrics.append(msg.subject)

    try:
        await worker.wait_serving(nc)
        await nc.subscribe(CANCEL_ALL_SUBJECT, cb=keep)
        await nc.subscribe("risk.metrics", cb=published)
        a, b = unique("STA-"), unique("STB-")
        for account in (a, b):
            await fund(nc, account)
            await wait_approved(nc, account, strategy_id=MOMO)
        await wait_for(lambda: len(metrics) >= 3, 10.0, message="the worker holds no lease")
        kv = await open_bucket(nc.jetstream(), worker.bucket)
        key = auto_strategy_key(a, MOMO)

        halt = await write_state(kv, key, trip(TradingState.HALTED))
        await wait_denied(nc, a, "emergency_stop_active", strategy_id=MOMO)
        reply = await check(nc, a, strategy_id=MOMO)
        assert (
            f"strategy {MOMO} of account {a} (automatic) trading state HALTED" in (reply["reason"])
        ), reply
        assert (await check(nc, b, strategy_id=MOMO))["approved"] is True  # another account
        assert (await check(nc, a, strategy_id="carry"))["approved"] is True  # another strategy
        assert (await check(nc, a))["approved"] is True  # no strategy
        await wait_for(lambda: halt in [m["revision"] for m in seen], 10.0, message="no cancel")
        cancel = next(m for m in seen if m["revision"] == halt)
        assert (cancel["scope"], cancel["account_id"], cancel["strategy_id"]) == (
            "strategy",
            a,
            MOMO,
        )

        reducing = await write_state(kv, key, trip(TradingState.REDUCING))
        await wait_denied(nc, a, "reducing_only", strategy_id=MOMO)
        status = await run_cli(env, "emergency", "status", "--account", a)
        assert status.returncode == 0, status
        row = next(x for x in status.stdout.splitlines() if f"strategy.{MOMO}" in x)
        assert "REDUCING" in row and "worker-7" in row and str(reducing) in row, status.stdout

        refused = await run_cli(
            env, "emergency", "trip", "--reason", "x", "--by", "bob", "--account", a,
            "--strategy", MOMO,
        )  # fmt: skip
        assert refused.returncode == 2 and "tripped by the workers only" in refused.stderr

        stale = await run_cli(
            env, "emergency", "clear", "--reason", "ok", "--by", "bob", "--account", a,
            "--strategy", MOMO, "--auto-revision", str(halt),
        )  # fmt: skip
        assert stale.returncode == 1, stale  # a newer trip (REDUCING) is never undone
        await wait_denied(nc, a, "reducing_only", strategy_id=MOMO)
        cleared = await run_cli(
            env, "emergency", "clear", "--reason", "ok", "--by", "bob", "--account", a,
            "--strategy", MOMO, "--auto-revision", str(reducing),
        )  # fmt: skip
        assert cleared.returncode == 0, cleared
        assert f"strategy {MOMO} of account {a} (automatic) → ACTIVE" in cleared.stdout, cleared
        await wait_approved(nc, a, strategy_id=MOMO)
        value, _ = await read_state(kv, key)
        assert value is not None and (value.state, value.updated_by) == (TradingState.ACTIVE, "bob")
        again = await run_cli(
            env, "emergency", "clear", "--reason", "ok", "--by", "bob", "--account", b,
            "--strategy", MOMO,
        )  # fmt: skip
        assert again.returncode == 0 and "already ACTIVE" in again.stdout, again  # never tripped
        assert [m["revision"] for m in seen] == [halt]  # REDUCING and ACTIVE cancel nothing
    finally:
        await nc.close()


async def test_strategy_trip_when_recorded_then_audit_row_and_alert_carry_both_ids(
    own_nats_server: NatsServer, migrated_url: str
) -> None:
    h = await start_harness(own_nats_server.url, database_url=migrated_url)
    try:
        alerts = await h.collect("risk.alerts.emergency")
        bucket = h.settings.kv_bucket
        kv = await open_bucket(h.nc.jetstream(), bucket)
        await write_state(kv, auto_strategy_key("AUD1", MOMO), trip(TradingState.HALTED))

        async def stop_row() -> asyncpg.Record | None:
            conn = await asyncpg.connect(migrated_url, timeout=5)
            try:
                return await conn.fetchrow(
                    "SELECT * FROM emergency_stops WHERE scope = 'strategy' AND action = 'clear'"
                )
            finally:
                await conn.close()

        done = await operator.clear(h.nc, bucket, "resolved", "bob", "AUD1", strategy_id=MOMO)
        assert list(done) == [auto_strategy_key("AUD1", MOMO)]
        await wait_for(stop_row, 10.0, 0.1, "the strategy trip's clear never reached PostgreSQL")
        row = await stop_row()
        assert row is not None
        assert (row["account_id"], row["strategy_id"], row["symbol"]) == ("AUD1", MOMO, None)
        assert (row["state"], row["triggered_by"]) == ("ACTIVE", "bob")
        await wait_for(lambda: len(alerts) >= 1, 5.0, message="no emergency_clear alert")
        alert = alerts[-1]
        assert (alert["type"], alert["scope"], alert["account_id"], alert["strategy_id"]) == (
            "emergency_clear",
            "strategy",
            "AUD1",
            MOMO,
        )
        with pytest.raises(ValueError, match="auto-revision"):
            await operator.clear(h.nc, bucket, "x", "bob", "AUD1", revision=1, strategy_id=MOMO)
    finally:
        await stop_harness(h)
