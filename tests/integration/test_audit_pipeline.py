"""Violations and stops reach PostgreSQL through RISK_EVENTS: none lost, none doubled.

These tests use their own nats-server, so the durable ``risk-sink`` consumer sees only their
records.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

import asyncpg
import pytest

from risk_worker.adapters import operator
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.devstack.postgres import PostgresServer
from risk_worker.domain.types import TradingState
from tests.harness import Harness, start_harness, stop_harness
from tests.helpers import wait_for
from tests.integration.conftest import migrate_url
from tests.pg_fixtures import temporary_database

MAX_QTY_POLICY = """
INSERT INTO risk_policies (name, type, metric, operator, threshold, scope, priority)
VALUES ('Max Order Quantity', 'hard', 'order_quantity', 'lte', 1, 'account', 1)"""
NO_THROTTLE = "UPDATE risk_policies SET threshold = 1e9 WHERE name = 'Max Order Rate'"
"""The seeded throttle (50 checks/s per account) off: this test floods one account."""


async def rows(url: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return await conn.fetchval(sql, *args, timeout=10)
    finally:
        await conn.close(timeout=5)


async def test_10000_denials_when_postgres_down_30s_and_worker_restarted_then_10000_rows(
    own_nats_server: NatsServer, own_postgres_server: PostgresServer
) -> None:
    async with temporary_database(own_postgres_server.url) as url:
        await migrate_url(url)
        await rows(url, MAX_QTY_POLICY)
        await rows(url, NO_THROTTLE)
        settings: dict[str, Any] = {"database_url": url, "kv_bucket": "risk_control"}
        h = await start_harness(own_nats_server.url, **settings)
        account = "AUDIT1"
        sent = 0

        async def deny_batch(harness: Harness, n: int, latencies: list[float]) -> None:
            nonlocal sent
            for _ in range(n // 16):
                started = time.perf_counter()
                replies = await asyncio.gather(
                    *(
                        harness.check(
                            account, "BTCUSDT", "BUY", 2.0, 100.0, order_id=f"o-{sent + i}"
                        )
                        for i in range(16)
                    )
                )
                latencies.append((time.perf_counter() - started) / 16)
                sent += 16
                assert all(r["rejection_reason"] == "order_too_large" for r in replies), replies

        try:
            await h.pnl(account, 1_000_000.0)
            await h.settle()
            normal: list[float] = []
            await deny_batch(h, 3008, normal)
            own_postgres_server.stop()  # PostgreSQL down for 30 s, checks go on
            outage: list[float] = []
            outage_end = time.monotonic() + 30.0
            while time.monotonic() < outage_end:
                if sent < 3008 + 3840:  # 24 rounds of 160 spread over the 30 s
                    await deny_batch(h, 160, outage)
                await asyncio.sleep(1.2)
            own_postgres_server.start()
            t = time.monotonic()
            await stop_harness(h)  # the worker restarts once, gracefully
            h = await start_harness(own_nats_server.url, **settings)
            print(f"\nworker restarted in {time.monotonic() - t:.1f} s")
            await h.pnl(account, 1_000_000.0)
            await h.settle()
            await deny_batch(h, 10_000 - sent, normal)
        finally:
            await stop_harness(h)
            h = await start_harness(own_nats_server.url, **settings)  # a sink to finish inserts

        try:
            assert sent == 10_000
            count_sql = "SELECT count(*) FROM risk_violations WHERE account_id = $1"

            async def all_in() -> bool:
                return int(await rows(url, count_sql, account)) >= 10_000

            done_at = time.monotonic()
            await wait_for(all_in, 60.0, 0.5, "not every violation reached PostgreSQL")
            print(
                f"\nall rows in PostgreSQL {time.monotonic() - done_at:.1f} s after the last check"
            )
            assert await rows(url, count_sql, account) == 10_000
            distinct = "SELECT count(DISTINCT order_id) FROM risk_violations WHERE account_id = $1"
            assert await rows(url, distinct, account) == 10_000
            assert (
                await rows(
                    url,
                    "SELECT count(*) FROM risk_violations WHERE source <> "
                    "'pre_trade' OR action_taken <> 'denied'",
                )
                == 0
            )
        finally:
            await stop_harness(h)
        us = 1e6
        print(
            f"\ncheck latency per request (16 in flight): normal p50 "
            f"{statistics.median(normal) * us:.0f} µs, during the PostgreSQL outage p50 "
            f"{statistics.median(outage) * us:.0f} µs, max {max(outage) * us:.0f} µs "
            f"({len(outage) * 16} checks)"
        )


async def test_threshold_when_updated_by_sql_then_decisions_change_within_1s(
    own_nats_server: NatsServer, migrated_url: str
) -> None:
    h = await start_harness(own_nats_server.url, database_url=migrated_url)
    try:
        await rows(migrated_url, MAX_QTY_POLICY)
        await h.pnl("HOT1", 1_000_000.0)
        await h.settle()

        async def qty2(expect: str | None) -> bool:
            reply = await h.check("HOT1", "BTCUSDT", "BUY", 2.0, 100.0, dry_run=True)
            return reply["rejection_reason"] == expect

        await wait_for(lambda: qty2("order_too_large"), 2.0, 0.02, "new policy not loaded")
        await rows(
            migrated_url,
            "INSERT INTO risk_policies (name, type, metric, operator, "
            "threshold) VALUES ('Broken', 'hard', 'nonsense_metric', 'lte', 1)",
        )
        updated = time.monotonic()
        await rows(
            migrated_url, "UPDATE risk_policies SET threshold = 5 WHERE name = 'Max Order Quantity'"
        )
        await wait_for(lambda: qty2(None), 1.0, 0.02, "the raised threshold was not seen in 1 s")
        print(f"\nthreshold change seen after {(time.monotonic() - updated) * 1000:.0f} ms")
        # The invalid row was skipped; every valid policy still applies.
        reply = await h.check("HOT1", "BTCUSDT", "BUY", 6.0, 100.0, dry_run=True)
        assert reply["rejection_reason"] == "order_too_large"
        assert h.worker.engine.policies is not None
        names = {p.name for p in h.worker.engine.policies.policies}
        assert "Broken" not in names and "Max Account Leverage" in names and len(names) == 10
    finally:
        await stop_harness(h)


async def test_trip_and_clear_when_recorded_then_rows_carry_the_account_snapshot(
    own_nats_server: NatsServer, migrated_url: str
) -> None:
    h = await start_harness(own_nats_server.url, database_url=migrated_url)
    try:
        await h.pnl("SNAPDB", 250_000.0)
        await h.position("SNAPDB", "ETHUSDT", 10.0, 3_000.0)
        await h.tick("ETHUSDT", 3_100.0)
        await h.settle()
        bucket = h.settings.kv_bucket
        await operator.trip(h.nc, bucket, TradingState.HALTED, "margin call", "alice", "SNAPDB")
        await operator.clear(h.nc, bucket, "topped up", "bob", "SNAPDB")

        async def both() -> bool:
            return int(await rows(migrated_url, "SELECT count(*) FROM emergency_stops")) >= 2

        await wait_for(both, 10.0, 0.1, "trip and clear rows not written")
        conn = await asyncpg.connect(migrated_url)
        try:
            found = await conn.fetch("SELECT * FROM emergency_stops ORDER BY revision")
        finally:
            await conn.close()
        assert [(r["action"], r["state"], r["triggered_by"]) for r in found] == [
            ("trip", "HALTED", "alice"),
            ("clear", "ACTIVE", "bob"),
        ]
        import msgspec  # noqa: PLC0415

        for r in found:
            snapshot = msgspec.json.decode(r["account_snapshot"])
            assert snapshot["metrics"]["equity"] == pytest.approx(251_000.0)
            assert snapshot["positions"] == [
                {"symbol": "ETHUSDT", "quantity": 10.0, "entry_price": 3_000.0}
            ]
        assert found[0]["account_id"] == "SNAPDB" and found[0]["scope"] == "account"
    finally:
        await stop_harness(h)


async def test_sink_when_schema_missing_then_records_wait_in_stream_until_migrated(
    database_url: str, own_nats_server: NatsServer
) -> None:
    h = await start_harness(
        own_nats_server.url, database_url=database_url, policy_fallback="defaults"
    )  # the empty database has no policies
    try:
        from risk_worker.wire.audit import ViolationRecord  # noqa: PLC0415

        for i in range(5):
            h.worker.sink.record(
                ViolationRecord(
                    id=str(uuid.uuid4()),
                    occurred_at=1_700_000_000_000 + i,
                    account_id="NOSCHEMA",
                    policy_id="p",
                    policy_name="P",
                    policy_type="hard",
                    metric="leverage",
                    metric_value=11.0,
                    threshold_value=10.0,
                    source="pre_trade",
                    action_taken="denied",
                    order_id=f"o-{i}",
                )
            )
        assert h.worker.pg_sink is not None
        sink = h.worker.pg_sink
        await wait_for(lambda: sink.failures >= 1, 10.0, 0.05, "the sink never tried")
        assert sink.rejected == 0  # nothing dropped for a missing table
        await migrate_url(database_url)

        async def arrived() -> bool:
            n = await rows(
                database_url, "SELECT count(*) FROM risk_violations WHERE account_id = 'NOSCHEMA'"
            )
            return int(n) == 5

        await wait_for(arrived, 15.0, 0.2, "records were lost while the schema was missing")
        assert sink.rejected == 0
    finally:
        await stop_harness(h)
