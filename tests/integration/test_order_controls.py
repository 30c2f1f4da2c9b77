"""Order-level controls over NATS with PostgreSQL: each denial's reason code, its persisted
violation, its Prometheus count by reason, and a reducing order that still passes (issue 12).

The worker reads its policies from the migrated database (the seeds of 0001 and 0002), as a
deployment does, and its ``risk-sink`` writes the audit rows there.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from risk_worker.adapters import operator
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.types import TradingState
from tests.harness import Harness, start_harness, stop_harness
from tests.helpers import wait_for

BTC = "BTCUSDT"
MARK = 50_000.0


async def execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def violation_row(url: str, order_id: str) -> dict[str, Any] | None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        row = await conn.fetchrow(
            "SELECT policy_id, policy_name, metric, metric_value, threshold_value, source, "
            "action_taken, context->>'rejection_reason' AS rejection_reason, "
            "context->>'symbol' AS symbol FROM risk_violations WHERE order_id = $1",
            order_id,
        )
    finally:
        await conn.close()
    return None if row is None else dict(row)


async def persisted(url: str, order_id: str) -> dict[str, Any]:
    """The violation row of a denied order, once the risk-sink has written it."""
    found: dict[str, Any] = {}

    async def written() -> bool:
        row = await violation_row(url, order_id)
        if row is not None:
            found.update(row)
        return row is not None

    await wait_for(written, 10.0, 0.05, f"no risk_violations row for {order_id}")
    return found


def denied_count(h: Harness, reason: str) -> float:
    return h.metric("risk_order_checks_total", result="denied", reason=reason)


@pytest.fixture
async def make_worker(own_nats_server: NatsServer, migrated_url: str) -> AsyncIterator[Any]:
    started: list[Harness] = []

    async def make(*sql: str) -> Harness:
        for statement in sql:
            await execute(migrated_url, statement)
        h = await start_harness(own_nats_server.url, database_url=migrated_url)
        started.append(h)
        return h

    yield make
    for h in started:
        await stop_harness(h)


async def reducing_account(h: Harness) -> str:
    """An account long 2 BTC at the mark, tripped to REDUCING by an operator."""
    account = f"CTL-{uuid.uuid4().hex[:8]}"
    await h.pnl(account, 100_000.0)
    await h.position(account, BTC, 2.0, MARK)
    await h.tick(BTC, MARK)
    await h.settle()
    await operator.trip(h.nc, h.settings.kv_bucket, TradingState.REDUCING, "t", "pytest", account)
    await wait_for(
        lambda: h.worker.engine.states.effective(account).state is TradingState.REDUCING,
        5.0,
        message="REDUCING not seen",
    )
    return account


async def test_collar_when_reducing_sell_at_a_fat_finger_price_then_denied_persisted_counted(
    make_worker: Any, migrated_url: str
) -> None:
    h = await make_worker()
    account = await reducing_account(h)
    reply = await h.check(account, BTC, "SELL", 1.0, 5_000.0, order_id="collar-1")
    assert (reply["approved"], reply["rejection_reason"]) == (False, "price_out_of_collar")
    assert reply["reason"].startswith("Price Collar: price_deviation[BTCUSDT] 0.9 violates lte")
    assert [v["policy_name"] for v in reply["violations"]] == ["Price Collar"]
    # the same reducing order within the band passes, in the REDUCING state
    ok = await h.check(account, BTC, "SELL", 1.0, 49_000.0, order_id="collar-2")
    assert ok["approved"] is True, ok
    row = await persisted(migrated_url, "collar-1")
    assert row["policy_name"] == "Price Collar" and row["metric"] == "price_deviation"
    assert row["metric_value"] == pytest.approx(0.9) and row["threshold_value"] == 0.05
    assert (row["rejection_reason"], row["symbol"]) == ("price_out_of_collar", BTC)
    assert (row["source"], row["action_taken"]) == ("pre_trade", "denied")
    assert denied_count(h, "price_out_of_collar") == 1


async def test_size_when_huge_quantity_at_a_tiny_limit_then_order_too_large_persisted_counted(
    make_worker: Any, migrated_url: str
) -> None:
    h = await make_worker()
    account = await reducing_account(h)
    await operator.clear(h.nc, h.settings.kv_bucket, "t", "pytest", account)
    await wait_for(
        lambda: h.worker.engine.states.effective(account).state is TradingState.ACTIVE, 5.0
    )
    # the largest quantity and the smallest price the wire takes: 1 quote at its limit
    reply = await h.check(account, BTC, "BUY", 1e12, 1e-12, order_id="size-1")
    assert (reply["approved"], reply["rejection_reason"]) == (False, "order_too_large")
    assert [v["policy_name"] for v in reply["violations"]] == ["Max Order Size"]
    assert reply["violations"][0]["value"] == pytest.approx(1e12 * MARK / 100_000.0)
    await operator.trip(h.nc, h.settings.kv_bucket, TradingState.REDUCING, "t", "pytest", account)
    await wait_for(
        lambda: h.worker.engine.states.effective(account).state is TradingState.REDUCING, 5.0
    )
    ok = await h.check(account, BTC, "SELL", 1.0, MARK, order_id="size-2")  # reduces, fits
    assert ok["approved"] is True, ok
    row = await persisted(migrated_url, "size-1")
    assert (row["policy_name"], row["metric"]) == ("Max Order Size", "order_equity_fraction")
    assert row["rejection_reason"] == "order_too_large"
    assert denied_count(h, "order_too_large") == 1


async def test_throttle_when_4th_live_check_in_a_second_then_rate_limited_persisted_counted(
    make_worker: Any, migrated_url: str
) -> None:
    h = await make_worker("UPDATE risk_policies SET threshold = 3 WHERE name = 'Max Order Rate'")
    account = await reducing_account(h)
    replies = [
        await h.check(account, BTC, "SELL", 0.1, MARK, order_id=f"rate-{k}") for k in range(4)
    ]
    assert [r["approved"] for r in replies] == [True, True, True, False]
    assert replies[3]["rejection_reason"] == "rate_limited"
    assert replies[3]["reason"].startswith("Max Order Rate: order_rate 4 violates lte 3")
    dry = await h.check(account, BTC, "SELL", 0.1, MARK, order_id="rate-dry", dry_run=True)
    assert dry["approved"] is True  # dry runs are neither counted nor throttled
    row = await persisted(migrated_url, "rate-3")
    assert (row["policy_name"], row["metric"], row["metric_value"]) == (
        "Max Order Rate",
        "order_rate",
        4.0,
    )
    assert row["rejection_reason"] == "rate_limited"
    assert denied_count(h, "rate_limited") == 1
    # once the window has emptied, a reducing order passes again
    window = h.worker.engine.rates.accounts[account]
    await wait_for(lambda: time.time_ns() // 1_000_000 - window[-1] > 1_000, 5.0)
    ok = await h.check(account, BTC, "SELL", 0.1, MARK, order_id="rate-after")
    assert ok["approved"] is True, ok


async def test_duplicate_when_retried_then_same_approval_and_other_content_denied_persisted(
    make_worker: Any, migrated_url: str
) -> None:
    h = await make_worker()
    account = await reducing_account(h)
    first = await h.check(account, BTC, "SELL", 0.5, MARK, order_id="dup-1")
    retry = await h.check(account, BTC, "SELL", 0.5, MARK, order_id="dup-1")
    assert (first["approved"], first["duplicate"]) == (True, False)
    # an idempotent retry of a reducing order passes, in the REDUCING state, reserving nothing
    assert (retry["approved"], retry["duplicate"], retry["rejection_reason"]) == (True, True, None)
    assert retry["risk_level"] == first["risk_level"]
    assert len(h.worker.engine.book.accounts[account].pending) == 1
    other = await h.check(account, BTC, "SELL", 0.7, MARK, order_id="dup-1")
    assert (other["approved"], other["rejection_reason"]) == (False, "duplicate_order_id")
    assert other["duplicate"] is False
    row = await persisted(migrated_url, "dup-1")
    assert (row["policy_id"], row["policy_name"], row["metric"]) == (
        "duplicate_order_id",
        "Duplicate Order Id",
        "order_id",
    )
    assert (row["rejection_reason"], row["symbol"]) == ("duplicate_order_id", BTC)
    assert denied_count(h, "duplicate_order_id") == 1
    assert h.metric("risk_order_checks_total", result="approved", reason="none") >= 2


async def test_open_orders_when_at_the_limit_then_too_many_open_orders_persisted_counted(
    make_worker: Any, migrated_url: str
) -> None:
    h = await make_worker(
        "INSERT INTO risk_policies (name, type, metric, operator, threshold) "
        "VALUES ('Max Open Orders', 'hard', 'open_orders', 'lte', 2)"
    )
    account = await reducing_account(h)
    assert (await h.check(account, BTC, "SELL", 0.1, MARK, order_id="open-1"))["approved"]
    assert (await h.check(account, BTC, "SELL", 0.1, MARK, order_id="open-2"))["approved"]
    reply = await h.check(account, BTC, "SELL", 0.1, MARK, order_id="open-3")
    assert (reply["approved"], reply["rejection_reason"]) == (False, "too_many_open_orders")
    assert reply["reason"].startswith("Max Open Orders: open_orders 3 violates lte 2")
    row = await persisted(migrated_url, "open-3")
    assert (row["policy_name"], row["metric"], row["metric_value"]) == (
        "Max Open Orders",
        "open_orders",
        3.0,
    )
    assert row["rejection_reason"] == "too_many_open_orders"
    assert denied_count(h, "too_many_open_orders") == 1
    # a fill ends one order; the next reducing order fits under the limit again
    await h.fill(account, BTC, "SELL", 0.1, MARK, "open-1")
    await h.settle()
    ok = await h.check(account, BTC, "SELL", 0.1, MARK, order_id="open-4")
    assert ok["approved"] is True, ok
