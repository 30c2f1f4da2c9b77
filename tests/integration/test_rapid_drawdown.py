"""Rapid drawdown on the 2017-09-04 ETH crash (skipped when ../shared/data is absent).

Two views of the same recorded day: the decision core replayed on the bars' own clock (so the
300 s window is 300 s of market time, as in production), and the worker over NATS fed by the
real ``risk-worker replay`` command, which publishes the soft warning on
``risk.alerts.warning``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from risk_worker.devstack.replay import read_ticks
from risk_worker.domain.book_events import PnlSnapshot, PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.policies import default_policies
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.types import TradingState
from tests.integration.conftest import HarnessFactory
from tests.integration.test_real_data import BARS, crash_2017_09_04

pytestmark = pytest.mark.shared_data
DAY_START_MS, DAY_END_MS = 1504483200000, 1504569600000  # 2017-09-04 00:00 → 09-05 00:00 UTC
RAPID = "Rapid Drawdown Warning"


def test_bars_of_2017_09_04_when_replayed_on_market_time_then_3x_warns_and_1x_does_not(
    shared_data_dir: Path,
) -> None:
    ticks = read_ticks(
        shared_data_dir / BARS, {"ETHUSD": "ETHUSDT"}, {"ETHUSDT"}, DAY_START_MS, DAY_END_MS
    )
    first = ticks[0]
    engine = RiskEngine(RiskConfig(mark_max_age_ms=120_000, drawdown_window_ms=300_000))
    engine.load_policies(default_policies())
    for account, leverage in (("x3", 3.0), ("x1", 1.0)):
        engine.apply_pnl(PnlSnapshot(account, 100_000.0, None, None, first.timestamp))
        engine.apply_position(
            PositionSnapshot(account, "ETHUSDT", leverage * 100_000.0 / first.price, first.price, 1)
        )
    warned: dict[str, list[int]] = {"x3": [], "x1": []}
    worst = {"x3": 0.0, "x1": 0.0}
    daily = {"x3": 0.0, "x1": 0.0}
    for tick in ticks:  # one monitor pass a bar, at the bar's time
        engine.set_mark(tick.symbol, tick.price, tick.timestamp, tick.timestamp)
        for report in engine.monitor(tick.timestamp, apply_trips=False):
            m = report.metrics
            worst[report.account_id] = max(worst[report.account_id], m.drawdown_window)
            daily[report.account_id] = max(daily[report.account_id], m.drawdown_daily)
            if any(v.policy.name == RAPID for v in report.violations):
                warned[report.account_id].append(tick.timestamp)
    # ETH fell 2.6 % within five minutes at 08:28 UTC: over 10 % of the 3x account's equity,
    # by then below its start (the position keeps its size as equity shrinks)
    assert warned["x3"], f"no rapid drawdown warning at 3x (worst {worst['x3']:.4f})"
    assert 0.05 < worst["x3"] < 0.15
    assert min(warned["x3"]) >= DAY_START_MS + 8 * 3_600_000  # not before the 08:2x fall
    # at 1x the same five minutes are 2.6 %: no warning, though the day's fall is far deeper
    assert warned["x1"] == [] and worst["x1"] < 0.05 and daily["x1"] > 0.15
    print(f"\nrapid drawdown 3x {worst['x3']:.4f}, 1x {worst['x1']:.4f}")
    print(f"daily drawdown 1x {daily['x1']:.4f}")


async def test_replay_2017_09_04_over_nats_when_long_eth_at_3x_then_rapid_drawdown_warning(
    harness_factory: HarnessFactory, shared_data_dir: Path
) -> None:
    h = await harness_factory(monitor_interval=0.05, auto_trip_state=TradingState.HALTED)
    crash = await crash_2017_09_04(h, shared_data_dir)
    rapid = [
        b for s, b in crash.seen if s == "risk.alerts.warning" and b.get("policy_name") == RAPID
    ]
    assert [b["account_id"] for b in rapid] == [crash.long_acct], rapid
    windows = [
        b["drawdown_window"]
        for s, b in crash.seen
        if s == "risk.metrics" and b["account_id"] == crash.long_acct
    ]
    assert max(windows) > 0.05
    flat = [b for s, b in crash.seen if s == "risk.metrics" and b["account_id"] == crash.flat_acct]
    assert flat and all(b["drawdown_window"] == 0.0 for b in flat)
    assert uuid.UUID(rapid[0]["policy_id"]).version == 5
