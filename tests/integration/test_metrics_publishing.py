"""risk.metrics with a real worker: what moved at the next pass, the rest spread over
RISK_METRICS_MAX_INTERVAL (issue 16 item 3)."""

from __future__ import annotations

import asyncio
import collections
import itertools
from typing import Any

import msgspec
from nats.aio.msg import Msg

from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory

INTERVAL = 0.2
"""RISK_MONITOR_INTERVAL of the test's worker (s)."""
MAX_INTERVAL = 2.0
"""RISK_METRICS_MAX_INTERVAL of the test's worker (s)."""
QUIET = [f"QUIET-{i:02d}" for i in range(20)]
"""Accounts whose figures never move (fixed ids: their phases are fixed)."""
MOVER = "MOVER-01"
"""An account long 2 BTC: a tick moves its figures."""


async def test_metrics_when_figures_unchanged_then_spread_over_max_interval_and_moves_at_once(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(monitor_interval=INTERVAL, metrics_max_interval=MAX_INTERVAL)
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, dict[str, Any]]] = []  # (receipt time, body)

    async def keep(msg: Msg) -> None:
        seen.append((loop.time(), msgspec.json.decode(msg.data)))

    def of(account: str, since: float = 0.0) -> list[dict[str, Any]]:
        return [b for t, b in seen if b["account_id"] == account and t >= since]

    await h.nc.subscribe("risk.metrics", cb=keep)
    for account in QUIET:
        await h.pnl(account, 100_000.0)
    await h.pnl(MOVER, 100_000.0)
    await h.position(MOVER, "BTCUSDT", 2.0, 50_000.0)
    await h.tick("BTCUSDT", 50_000.0)
    await h.settle()
    await wait_for(
        lambda: (
            all(of(a) for a in QUIET) and of(MOVER) and of(MOVER)[-1]["gross_exposure"] == 100_000.0
        ),
        5.0,
        message="not every account was published",
    )

    # unchanged: about once per MAX_INTERVAL (not every pass), spread over the interval
    def counted(result: str) -> float:
        return h.metric("risk_metrics_messages_total", result=result)

    published_before, skipped_before = counted("published"), counted("skipped")
    start = loop.time()
    await asyncio.sleep(2.25 * MAX_INTERVAL)  # the observation window is the point
    published, skipped = counted("published"), counted("skipped")
    in_window = len([b for t, b in seen if t >= start])
    # the counters say what the subscriber saw (a pass may straddle either end of the window)
    assert abs((published - published_before) - in_window) <= len(QUIET) + 1
    assert skipped - skipped_before > 5 * (published - published_before)  # mostly held back
    for account in QUIET:
        stamps = [b["timestamp"] for b in of(account, start)]
        assert 2 <= len(stamps) <= 3, (account, stamps)  # every pass would be 22
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert all(1_600 <= g <= 2_700 for g in gaps), (account, gaps)
    passes = collections.Counter(
        b["timestamp"] for t, b in seen if t >= start and b["account_id"] in QUIET
    )
    assert max(passes.values()) <= len(QUIET) // 2, passes  # no burst of them all
    assert len(passes) >= 8, passes  # ~10 passes per interval, most carry some

    # moved: published at the next pass, long before its turn
    await wait_for(lambda: bool(of(MOVER, loop.time() - 0.05)), 2 * MAX_INTERVAL)  # just sent
    sent = loop.time()
    await h.tick("BTCUSDT", 51_000.0)  # +2 %: equity +2,000 (2 % of the account)
    await wait_for(
        lambda: any(b["equity"] == 102_000.0 for b in of(MOVER, sent)),
        MAX_INTERVAL,
        message="the move was not published",
    )
    arrived = next(t for t, b in seen if b["account_id"] == MOVER and b["equity"] == 102_000.0)
    assert arrived - sent <= INTERVAL + 0.5, arrived - sent
    assert all(len(of(a, sent)) <= 1 for a in QUIET)  # the tick moved nobody else
