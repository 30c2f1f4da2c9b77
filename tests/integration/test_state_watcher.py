"""The trading-state copy stays honest when its KV watcher goes blind (nats.py #510)."""

from __future__ import annotations

import asyncio

from risk_worker import operator
from risk_worker.domain.types import TradingState
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory

INTERVAL = 0.3


async def test_watcher_when_blind_then_trip_enforced_within_one_confirm_interval(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(state_confirm_interval=INTERVAL, state_max_age=2.0)
    await h.pnl("BLIND1", 100_000.0)
    await h.settle()
    watcher = h.worker.watcher
    assert watcher is not None and watcher._watcher is not None
    # Fault injection: the watcher's subscription stops delivering without any error, which is
    # what a server restart did to nats-py's KV watcher.
    await watcher._watcher._sub.unsubscribe()
    await operator.trip(h.nc, h.settings.kv_bucket, TradingState.HALTED, "test", "pytest", None)
    loop = asyncio.get_running_loop()
    tripped_at = loop.time()
    replies: list[tuple[float, dict[str, object]]] = []

    async def enforced() -> bool:
        reply = await h.check("BLIND1", "BTCUSDT", "BUY", 0.1, 50_000.0, dry_run=True)
        replies.append((loop.time() - tripped_at, reply))
        return reply["rejection_reason"] == "emergency_stop_active"

    await wait_for(enforced, 5.0, 0.01, "the trip was never enforced")
    approved_after = [t for t, r in replies if r["approved"]]
    reasons = {r["rejection_reason"] for _, r in replies if not r["approved"]}
    assert reasons <= {"trading_state_unknown", "emergency_stop_active"}
    # Without the lag check the copy would stay confirmed-but-stale for RISK_STATE_MAX_AGE (2 s).
    assert not approved_after or max(approved_after) < INTERVAL + 0.2, approved_after
    print(
        f"\napprovals until {max(approved_after, default=0):.3f} s after the trip; "
        f"enforced after {replies[-1][0]:.3f} s"
    )
