"""Ticks over real NATS: the subject names the symbol, the mark table is bounded, and a wild
tick is held as suspect (counted, alerted once) until confirmed (issue 10, items 5-6)."""

from __future__ import annotations

import uuid

from tests.harness import Harness, now_ms
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory


async def test_tick_when_body_symbol_differs_from_subject_then_dropped_and_no_mark_moves(
    harness: Harness,
) -> None:
    await harness.tick("BTCUSDT", 50_000.0)
    await harness.publish(
        "market.tick.BTCUSDT", {"symbol": "ETHUSDT", "price": 1.0, "timestamp": now_ms()}
    )
    await harness.settle()
    marks = harness.worker.engine.book.marks
    assert "ETHUSDT" not in marks
    assert marks["BTCUSDT"].price == 50_000.0
    invalid = harness.metric("risk_events_invalid_total", kind="market.tick", reason="out_of_range")
    assert invalid == 1
    # the same symbol in body and subject is fine
    await harness.publish("market.tick.BTCUSDT", {"symbol": "BTCUSDT", "price": 50_100.0})
    await harness.settle()
    assert marks["BTCUSDT"].price == 50_100.0


async def test_ticks_when_symbol_table_full_then_new_symbols_refused_counted_and_denied(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(max_symbols=3)
    symbols = [f"SYM{i}" for i in range(5)]
    for symbol in symbols:
        await h.tick(symbol, 10.0)
    await h.settle()
    marks = h.worker.engine.book.marks
    assert set(marks) == set(symbols[:3])
    ignored = h.metric("risk_events_ignored_total", kind="market.tick", result="symbol_limit")
    assert ignored == 2
    await h.tick("SYM0", 10.5)  # a held symbol still moves
    await h.settle()
    assert marks["SYM0"].price == 10.5
    await h.pnl("ACC-SYMS", 100_000.0)
    await h.settle()
    reply = await h.check("ACC-SYMS", "SYM4", "BUY", 1.0, dry_run=True)  # a market order
    assert reply["rejection_reason"] == "no_market_price", reply


async def test_tick_when_jump_beyond_max_then_held_alerted_once_and_applied_on_confirmation(
    harness: Harness,
) -> None:
    alerts = await harness.collect("risk.alerts.warning")
    await harness.tick("ETHUSDT", 3_000.0)
    await harness.tick("ETHUSDT", 4_000.0)  # +33 %: suspect
    await harness.settle()
    marks = harness.worker.engine.book.marks
    assert marks["ETHUSDT"].price == 3_000.0
    await wait_for(lambda: len(alerts) == 1, 5.0, message="no suspect_tick alert")
    alert = alerts[0]
    assert (alert["type"], alert["level"], alert["symbol"]) == (
        "suspect_tick",
        "warning",
        "ETHUSDT",
    )
    assert (alert["mark_price"], alert["tick_price"]) == (3_000.0, 4_000.0)
    assert alert["metric_value"] == 1 / 3
    assert alert["threshold_value"] == 0.25

    for _ in range(2):  # two confirmations: still held
        await harness.tick("ETHUSDT", 4_010.0)
    await harness.settle()
    assert marks["ETHUSDT"].price == 3_000.0
    await harness.tick("ETHUSDT", 3_990.0)  # the third confirms the new level
    await harness.settle()
    assert marks["ETHUSDT"].price == 3_990.0

    for _ in range(3):  # a new suspect level, cancelled by a tick near the mark
        await harness.tick("ETHUSDT", 9_000.0)
    await harness.tick("ETHUSDT", 4_000.0)
    await harness.settle()
    assert marks["ETHUSDT"].price == 4_000.0
    suspect = harness.metric("risk_events_ignored_total", kind="market.tick", result="suspect")
    assert suspect == 6  # 4000, 4010 ×2, 9000 ×3
    assert harness.metric("risk_alerts_published_total", level="warning") == 1  # de-duplicated
    await harness.nc.flush()
    assert len(alerts) == 1


async def test_ticks_when_no_fresh_mark_then_first_tick_applied_directly(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(mark_max_age=0.2)
    await h.tick(f"NEW{uuid.uuid4().hex[:4]}", 1e9)  # no mark yet: applied (still bounded)
    await h.tick("OLD", 100.0)
    await h.settle()
    marks = h.worker.engine.book.marks
    await wait_for(lambda: marks["OLD"].received_ms < now_ms() - 250, 2.0)
    await h.tick("OLD", 1_000.0)  # the mark is stale: a jump is applied
    await h.settle()
    assert marks["OLD"].price == 1_000.0
