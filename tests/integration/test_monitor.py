"""The monitor over real NATS: risk.metrics, alerts by level, breaker and emergency trips."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import pytest
from nats.aio.msg import Msg

from risk_worker.adapters import operator
from risk_worker.adapters.kv_bucket import open_bucket, read_state
from risk_worker.domain.trading_state import account_key, auto_key
from risk_worker.domain.types import TradingState
from risk_worker.wire.audit import StateChangeRecord, ViolationRecord
from tests.harness import Harness, ListSink
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory


class Inbox:
    """Collects decoded messages of a subject."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    async def handle(self, msg: Msg) -> None:
        self.messages.append((msg.subject, msgspec.json.decode(msg.data)))

    def of(self, subject: str, **match: object) -> list[dict[str, Any]]:
        return [
            b
            for s, b in self.messages
            if s == subject and all(b.get(k) == v for k, v in match.items())
        ]


async def long_btc(h: Harness, inbox: Inbox) -> str:
    """An account with 100k balance, long 4 BTC at 50k (2x), marked at 50k; peak observed."""
    account = f"MON-{uuid.uuid4().hex[:8]}"
    await h.nc.subscribe("risk.>", cb=inbox.handle)
    await h.pnl(account, 100_000.0)
    await h.position(account, "BTCUSDT", 4.0, 50_000.0)
    await h.tick("BTCUSDT", 50_000.0)
    await h.settle()
    await wait_for(
        lambda: bool(inbox.of("risk.metrics", account_id=account)),
        message="no risk.metrics for the account",
    )
    return account


async def test_metrics_when_account_known_then_published_with_its_figures(harness: Harness) -> None:
    inbox = Inbox()
    account = await long_btc(harness, inbox)
    # the figures move as the events arrive: each move is published at the next pass
    await wait_for(
        lambda: inbox.of("risk.metrics", account_id=account)[-1]["gross_exposure"] == 200_000.0,
        message="risk.metrics never showed the position",
    )
    m = inbox.of("risk.metrics", account_id=account)[-1]
    assert m["equity"] == pytest.approx(100_000.0)
    assert m["leverage"] == pytest.approx(2.0)
    assert m["gross_exposure"] == pytest.approx(200_000.0)
    assert m["margin_used"] == pytest.approx(20_000.0)
    assert m["margin_ratio"] == pytest.approx(5.0)
    assert m["position_concentration"] == {"BTCUSDT": pytest.approx(2.0)}
    assert m["limit_utilization"]["Max Account Leverage"] == pytest.approx(0.2)
    assert (m["risk_level"], m["trading_state"], m["stale_marks"]) == ("LOW", "ACTIVE", False)
    assert m["peak_equity"] == pytest.approx(100_000.0)


async def test_monitor_when_hard_breach_persists_then_critical_alert_once_and_breaker_trips(
    harness_factory: HarnessFactory,
) -> None:
    """Issue 10, item 12: the breaker's automatic trip sets REDUCING by default, so a strictly
    reducing SELL passes (it used to be denied emergency_stop_active); an operator's HALT still
    blocks everything."""
    # every pass publishes (RISK_METRICS_MAX_INTERVAL below the monitor interval): the
    # evaluations before the trip are counted by their metrics
    h = await harness_factory(breaker_threshold=5, metrics_max_interval=0.001)
    inbox = Inbox()
    account = await long_btc(h, inbox)
    await h.tick("BTCUSDT", 44_500.0)  # equity 78k: drawdown 22% > 20% (hard), < 25% (emergency)
    await h.settle()
    await wait_for(
        lambda: bool(inbox.of("risk.alerts.emergency", account_id=account, type="state_change")),
        timeout=5.0,
        message="the breaker never tripped the account",
    )
    stop = inbox.of("risk.alerts.emergency", account_id=account, type="state_change")[0]
    assert (stop["source"], stop["state"], stop["scope"]) == (
        "circuit_breaker",
        "REDUCING",
        "account",
    )
    critical = inbox.of("risk.alerts.critical", account_id=account)
    assert [a["policy_name"] for a in critical] == ["Max Drawdown"]  # de-duplicated: once
    assert critical[0]["metric_value"] == pytest.approx(0.22)
    assert critical[0]["threshold_value"] == pytest.approx(0.20)
    warnings = inbox.of("risk.alerts.warning", account_id=account)
    # the fall is both a daily and a rapid drawdown (within RISK_DRAWDOWN_WINDOW): two warnings
    assert sorted(a["policy_name"] for a in warnings) == [
        "Daily Drawdown Warning",
        "Rapid Drawdown Warning",
    ]
    breached = [
        m for m in inbox.of("risk.metrics", account_id=account) if m["risk_level"] == "BREACHED"
    ]
    assert len(breached) >= 5  # five evaluations with the breach before the trip
    kv = await open_bucket(h.nc.jetstream(), h.settings.kv_bucket)

    async def written() -> bool:
        value, revision = await read_state(kv, auto_key(account))
        return value is not None and value.state == "REDUCING" and revision > 0

    await wait_for(written, message="the automatic trip never reached the bucket")
    assert await read_state(kv, account_key(account)) == (None, 0)  # not the operators' key
    sell = await h.check(account, "BTCUSDT", "SELL", 0.1, 44_500.0)
    assert sell["approved"] is True, sell
    buy = await h.check(account, "BTCUSDT", "BUY", 0.1, 44_500.0)
    assert buy["rejection_reason"] == "reducing_only", buy
    await operator.trip(h.nc, h.settings.kv_bucket, TradingState.HALTED, "desk", "ops", account)

    async def operator_halt_blocks_the_sell() -> bool:
        reply = await h.check(account, "BTCUSDT", "SELL", 0.1, 44_500.0, dry_run=True)
        return bool(reply["rejection_reason"] == "emergency_stop_active")

    await wait_for(operator_halt_blocks_the_sell, message="the operator's HALT never applied")


async def test_monitor_when_emergency_policy_violated_then_halts_at_once(
    harness_factory: HarnessFactory,
) -> None:
    sink = ListSink()
    harness = await harness_factory(sink=sink, auto_trip_state=TradingState.HALTED)
    inbox = Inbox()
    account = await long_btc(harness, inbox)
    other = f"MON-{uuid.uuid4().hex[:8]}"
    await harness.pnl(other, 100_000.0)
    await harness.tick("BTCUSDT", 43_000.0)  # equity 72k: drawdown 28% > 25%
    await harness.settle()
    await wait_for(
        lambda: bool(inbox.of("risk.alerts.emergency", account_id=account, type="emergency_stop")),
        timeout=3.0,
    )
    [alert] = inbox.of("risk.alerts.emergency", account_id=account, type="policy_violation")
    assert alert["policy_name"] == "Emergency Drawdown Stop"
    assert alert["metric_value"] == pytest.approx(0.28)
    stop = inbox.of("risk.alerts.emergency", account_id=account, type="emergency_stop")[0]
    assert stop["source"] == "policy"
    assert stop["triggered_by"] == harness.settings.worker_id
    denied = await harness.check(account, "BTCUSDT", "BUY", 0.1, 43_000.0)
    assert denied["rejection_reason"] == "emergency_stop_active"
    assert (await harness.check(other, "BTCUSDT", "BUY", 0.1, 43_000.0))["approved"] is True
    # One trip per breach: later evaluations do not trip again.
    await asyncio.sleep(0.5)  # five more monitor intervals pass: the condition under test
    assert len(inbox.of("risk.alerts.emergency", account_id=account, type="emergency_stop")) == 1
    # The audit trail: the violation that halted, and the trip with the account's snapshot.
    halted = [
        r
        for r in sink.records
        if isinstance(r, ViolationRecord) and r.account_id == account and r.action_taken == "halted"
    ]
    assert [r.policy_name for r in halted] == ["Emergency Drawdown Stop"]
    [trip] = [r for r in sink.records if isinstance(r, StateChangeRecord)]
    assert (trip.account_id, trip.action, trip.state, trip.source) == (
        account,
        "trip",
        "HALTED",
        "policy",
    )
    assert trip.account_snapshot is not None
    assert trip.account_snapshot["metrics"]["drawdown_max"] == pytest.approx(0.28)
    assert trip.account_snapshot["positions"] == [
        {"symbol": "BTCUSDT", "quantity": 4.0, "entry_price": 50_000.0}
    ]
