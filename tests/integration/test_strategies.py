"""Per-strategy books over NATS (issue 13, item 2): fills naming a strategy, the strategies
section of risk.metrics, a strategy's drawdown policy, and its emergency trip."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from risk_worker.adapters import operator
from risk_worker.domain.policies import Policy, default_policies
from risk_worker.domain.types import Metric, Operator, PolicyType, Scope, TradingState
from tests.harness import Harness, ListSink, now_ms
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory

LOSER_DD = Policy(
    "strategy-dd", "Strategy Drawdown", PolicyType.HARD, Metric.DRAWDOWN_MAX, Operator.LTE,
    0.01, Scope.STRATEGY,
)  # fmt: skip
LOSER_STOP = Policy(
    "strategy-stop", "Strategy Drawdown Stop", PolicyType.EMERGENCY, Metric.DRAWDOWN_MAX,
    Operator.LTE, 0.015, Scope.STRATEGY,
)  # fmt: skip


async def strategy_fill(
    h: Harness, account: str, strategy: str, symbol: str, qty: float, price: float
) -> None:
    await h.publish(
        "fills.confirmed",
        {
            "fill_id": uuid.uuid4().hex,
            "order_id": uuid.uuid4().hex,
            "account_id": account,
            "symbol": symbol,
            "side": "BUY",
            "quantity": qty,
            "price": price,
            "timestamp": now_ms(),
            "strategy_id": strategy,
        },
    )


async def two_strategies(h: Harness, account: str) -> list[dict[str, Any]]:
    """Fund the account, let 'loser' buy 10 BTC and 'winner' 10 ETH; wait until risk.metrics
    shows both strategies (the peaks observed at PnL 0). Returns the metrics seen."""
    seen = await h.collect("risk.metrics")
    await h.pnl(account, 100_000.0)
    await h.tick("BTCUSDT", 1_000.0)
    await h.tick("ETHUSDT", 100.0)
    await strategy_fill(h, account, "loser", "BTCUSDT", 10.0, 1_000.0)
    await strategy_fill(h, account, "winner", "ETHUSDT", 10.0, 100.0)
    await h.settle()

    def both() -> bool:
        return any(
            m["account_id"] == account and set(m.get("strategies") or {}) == {"loser", "winner"}
            for m in seen
        )

    await wait_for(both, 10.0, message=f"no strategies section for {account}")
    return seen


async def test_strategy_drawdown_denies_that_strategy_while_another_trades_on(
    harness_factory: HarnessFactory,
) -> None:
    sink = ListSink()
    h = await harness_factory(policies=[*default_policies(), LOSER_DD], sink=sink)
    account = "STRAT1"
    seen = await two_strategies(h, account)
    await h.tick("BTCUSDT", 800.0)  # loser −2,000: 2 % of the equity at its peak
    await h.settle()
    denied = await h.check(account, "BTCUSDT", "BUY", 0.1, 800.0, strategy_id="loser")
    assert denied["approved"] is False
    assert denied["rejection_reason"] == "policy_violation"
    assert "Strategy Drawdown" in denied["reason"]
    winner = await h.check(account, "ETHUSDT", "BUY", 1.0, 100.0, strategy_id="winner")
    assert winner["approved"] is True, winner["reason"]
    plain = await h.check(account, "ETHUSDT", "BUY", 1.0, 100.0)
    assert plain["approved"] is True, plain["reason"]

    def loser_in_drawdown() -> bool:
        for m in reversed(seen):
            s = (m.get("strategies") or {}).get("loser")
            if m["account_id"] == account and s is not None:
                return bool(s["drawdown_max"] > 0.019)
        return False

    await wait_for(loser_in_drawdown, 10.0, message="risk.metrics never showed the drawdown")
    last = next(m for m in reversed(seen) if m["account_id"] == account)
    loser = last["strategies"]["loser"]
    assert loser["pnl"] == -2_000.0 and loser["peak_pnl"] == 0.0
    assert loser["gross_exposure"] == 8_000.0 and loser["risk_level"] == "BREACHED"
    assert last["strategies"]["winner"]["drawdown_max"] == 0.0
    await wait_for(
        lambda: any(getattr(r, "strategy_id", None) == "loser" for r in sink.records),
        10.0,
        message="no violation record naming the strategy",
    )


async def test_strategy_emergency_trips_that_strategy_of_that_account_only(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(
        policies=[*default_policies(), LOSER_STOP], auto_trip_state=TradingState.HALTED
    )
    account = "STRAT2"
    alerts = await h.collect("risk.alerts.emergency")
    await two_strategies(h, account)
    await h.tick("BTCUSDT", 800.0)
    await h.settle()

    def state_change() -> dict[str, Any] | None:
        return next((a for a in alerts if a.get("type") == "emergency_stop"), None)

    await wait_for(lambda: state_change() is not None, 10.0, message=f"no trip: {alerts}")
    trip = state_change()
    assert trip is not None
    assert (trip["scope"], trip["account_id"], trip["strategy_id"]) == (
        "strategy",
        account,
        "loser",
    )
    policy_alert = next(a for a in alerts if a.get("type") == "policy_violation")
    assert policy_alert["strategy_id"] == "loser"
    key = f"trading_state.auto.{account}.strategy.loser"
    values: dict[str, Any] = {}

    async def in_bucket() -> bool:
        rows = await operator.states(h.nc, h.settings.kv_bucket, account, "loser")
        values.update({k: v for k, v, _ in rows})
        return values.get(key) is not None

    await wait_for(in_bucket, 10.0, interval=0.1, message=f"{key} never written: {values}")
    assert values[key].state is TradingState.HALTED
    assert values[f"trading_state.auto.{account}"] is None  # the account is not tripped
    # the trip stops the loser's orders that reduce too (HALTED), not the winner's
    sell = await h.check(account, "BTCUSDT", "SELL", 1.0, 800.0, strategy_id="loser")
    assert sell["rejection_reason"] == "emergency_stop_active"
    winner = await h.check(account, "ETHUSDT", "BUY", 1.0, 100.0, strategy_id="winner")
    assert winner["approved"] is True, winner["reason"]
    await operator.clear(
        h.nc, h.settings.kv_bucket, "reviewed", "alice", account, None, None, "loser"
    )
    await wait_for(
        lambda: h.worker.engine.states.strategy_severity(account, "loser") == 0,
        5.0,
        message="the clear never reached the worker",
    )
    again = await h.check(account, "BTCUSDT", "SELL", 1.0, 800.0, strategy_id="loser")
    assert again["approved"] is True, again["reason"]  # reducing: the stop's onset has passed


async def test_metrics_query_and_cli_show_the_strategies(harness_factory: HarnessFactory) -> None:
    from tests.integration.test_cli import cli  # noqa: PLC0415

    h = await harness_factory(policies=[*default_policies(), LOSER_DD])
    account = "STRAT3"
    await two_strategies(h, account)
    await h.tick("BTCUSDT", 800.0)
    await h.settle()
    reply = await h.nc.request("risk.query.metrics", b'{"account_id": "STRAT3"}', timeout=2.0)
    body = msgspec.json.decode(reply.data)
    loser = body["strategies"]["loser"]
    assert (loser["pnl"], loser["risk_level"]) == (-2_000.0, "BREACHED")
    assert body["strategies"]["winner"]["risk_level"] != "BREACHED"
    shown = await cli(h.settings.nats_url, "metrics", account)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "strategies" in shown.stdout and "loser" in shown.stdout
    assert "-2,000.00" in shown.stdout
