"""One wild number changes nothing: out-of-bounds values are refused, wild ticks held as suspect,
and neither an infinite peak nor a corrupt snapshot survives a restart (issue 10, items 4-5)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from risk_worker.devstack.nats_server import NatsServer
from risk_worker.devstack.redis_server import RedisServer
from risk_worker.domain.persistence import AccountState, MarkState, PositionState
from risk_worker.domain.types import TradingState
from tests.harness import Harness, now_ms, start_harness, stop_harness
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory
from tests.redis_fixtures import redis_client

ETH = "ETHUSDT"


EVERY_PASS = 0.001
"""``RISK_METRICS_MAX_INTERVAL`` below the monitor interval: every pass publishes every account,
so :func:`monitor_passes` counts passes by their metrics."""


async def monitor_passes(metrics: list[dict[str, Any]], account: str, n: int) -> None:
    """Wait until ``n`` more ``risk.metrics`` of ``account`` arrived (n full monitor passes of
    a worker started with ``metrics_max_interval=EVERY_PASS``)."""
    seen = sum(1 for m in metrics if m["account_id"] == account)
    await wait_for(
        lambda: sum(1 for m in metrics if m["account_id"] == account) >= seen + n,
        5.0,
        message=f"fewer than {n} monitor passes published metrics of {account}",
    )


async def long_ten_eth(h: Harness, account: str) -> None:
    """Balance 100,000, long 10 ETH @ 3000, mark 3000: equity 100,000 (quote)."""
    await h.pnl(account, 100_000.0)
    await h.position(account, ETH, 10.0, 3_000.0)
    await h.tick(ETH, 3_000.0)
    await h.settle()


def wild_fill(account: str) -> dict[str, Any]:
    return {
        "fill_id": uuid.uuid4().hex,
        "order_id": "o-wild",
        "account_id": account,
        "symbol": ETH,
        "side": "BUY",
        "quantity": 1.0,
        "price": 3_000.0,
        "fee": -1e308,
        "timestamp": now_ms(),
    }


# (case, subject, body of the wild event, body that brings the book back, counter labels)
WILD = [
    ("price_1e308", f"market.tick.{ETH}", {"price": 1e308}, "tick", "invalid"),
    ("bid_ask_1e308", f"market.tick.{ETH}", {"bid": 1e308, "ask": 1e308}, "tick", "invalid"),
    ("price_1e9", f"market.tick.{ETH}", {"price": 1e9}, "tick", "suspect"),
    ("price_5e-324", f"market.tick.{ETH}", {"price": 5e-324}, "tick", "invalid"),
    ("balance_1e308", "pnl.update", {"balance": 1e308}, "pnl", "invalid"),
    ("balance_-1e308", "pnl.update", {"balance": -1e308}, "pnl", "invalid"),
    ("fee_-1e308", "fills.confirmed", None, "pnl", "invalid"),
]


@pytest.mark.parametrize(
    ("case", "subject", "body", "back", "counted"), WILD, ids=[w[0] for w in WILD]
)
async def test_wild_value_when_published_then_refused_or_held_and_account_never_halted(
    harness_factory: HarnessFactory,
    case: str,
    subject: str,
    body: dict[str, Any] | None,
    back: str,
    counted: str,
) -> None:
    harness = await harness_factory(metrics_max_interval=EVERY_PASS)
    account = f"WILD-{uuid.uuid4().hex[:6]}"
    metrics = await harness.collect("risk.metrics")
    await long_ten_eth(harness, account)
    await monitor_passes(metrics, account, 1)
    if body is None:
        event = wild_fill(account)
    elif subject == "pnl.update":
        event = {"account_id": account, "timestamp": now_ms(), **body}
    else:
        event = {"timestamp": now_ms(), **body}
    await harness.publish(subject, event)
    await harness.settle()
    await monitor_passes(metrics, account, 2)  # the monitor sees whatever the event did
    if back == "tick":
        await harness.tick(ETH, 3_000.0)
    else:
        await harness.pnl(account, 100_000.0)
    await harness.settle()
    await monitor_passes(metrics, account, 3)

    engine = harness.worker.engine
    assert engine.states.effective(account).state is TradingState.ACTIVE, case
    last = [m for m in metrics if m["account_id"] == account][-1]
    assert (last["equity"], last["peak_equity"], last["drawdown_max"]) == (100_000.0, 100_000.0, 0)
    assert engine.book.marks[ETH].price == 3_000.0
    reply = await harness.check(account, ETH, "BUY", 1.0, 3_000.0, dry_run=True)
    assert reply["approved"] is True, reply
    kind = "market.tick" if subject.startswith("market.tick") else subject
    if counted == "invalid":
        assert harness.metric("risk_events_invalid_total", kind=kind, reason="out_of_range") == 1
    else:
        assert harness.metric("risk_events_ignored_total", kind=kind, result="suspect") == 1


async def test_restart_when_a_1e308_tick_came_first_then_a_true_25pct_drawdown_denies_buys(
    own_nats_server: NatsServer, own_redis_server: RedisServer
) -> None:
    """Issue 10 item 4: the bid/ask 1e308 tick must not leave an infinite peak in Redis."""
    settings: dict[str, Any] = {
        "redis_url": own_redis_server.url,
        "monitor_interval": 0.05,
        "metrics_max_interval": EVERY_PASS,
    }
    account = f"INF-{uuid.uuid4().hex[:6]}"
    h = await start_harness(own_nats_server.url, **settings)
    try:
        metrics = await h.collect("risk.metrics")
        await long_ten_eth(h, account)
        await monitor_passes(metrics, account, 1)
        await h.publish(f"market.tick.{ETH}", {"bid": 1e308, "ask": 1e308})
        await h.settle()
        await monitor_passes(metrics, account, 2)
        await h.tick(ETH, 3_000.0)
        await h.settle()
        assert h.worker.snapshots is not None
        store = h.worker.snapshots.store
        writes = store.writes
        await wait_for(lambda: store.writes >= writes + 2, 5.0, message="no snapshot written")
    finally:
        await stop_harness(h)

    h = await start_harness(own_nats_server.url, **settings)  # the restart
    try:
        for _ in range(4):  # a true move: the suspect level and its three confirmations
            await h.tick(ETH, 500.0)
        await h.settle()
        await wait_for(lambda: h.worker.engine.book.marks[ETH].price == 500.0, 5.0)
        reply = await h.check(account, ETH, "BUY", 1.0, 500.0, dry_run=True)
        assert reply["approved"] is False, reply
        assert reply["rejection_reason"] in {"policy_violation", "emergency_stop_active"}
    finally:
        await stop_harness(h)


async def test_restart_when_stored_peak_is_inf_or_mark_out_of_bounds_then_refused_and_counted(
    harness_factory: HarnessFactory, own_redis_server: RedisServer
) -> None:
    account = f"CORRUPT-{uuid.uuid4().hex[:6]}"
    now = now_ms()
    state = AccountState(
        account, 100_000.0, 0.0, now, True, [PositionState(ETH, 10.0, 3_000.0, now, now)],
        100_000.0, 100_000.0, now // 86_400_000, now,
    )  # fmt: skip
    mark = MarkState(ETH, 1e308, now, now)
    enc = msgspec.json.encode
    async with redis_client(own_redis_server.url) as r:
        await r.set(f"risk:book:{account}", enc(state))
        await r.sadd("risk:book:index", account)
        await r.hset(f"risk:state:{account}", items=["peak_equity", "inf"])
        await r.hset("risk:marks", items=[ETH, enc(mark).decode()])

    h = await harness_factory(redis_url=own_redis_server.url)
    assert h.metric("risk_snapshot_refused_total", kind="account") == 1
    assert h.metric("risk_snapshot_refused_total", kind="mark") == 1
    engine = h.worker.engine
    assert account not in engine.book.accounts
    assert ETH not in engine.book.marks
    reply = await h.check(account, ETH, "BUY", 1.0, 3_000.0, dry_run=True)
    assert reply["rejection_reason"] == "unknown_account", reply
