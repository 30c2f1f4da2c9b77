"""Every decision of the check, produced by real requests to a worker over real NATS."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from risk_worker.adapters import operator
from risk_worker.domain.policies import ORDER_METRICS, Policy, default_policies
from risk_worker.domain.types import Metric, Operator, PolicyType, Scope, TradingState
from risk_worker.wire.audit import ViolationRecord
from tests.harness import Harness, ListSink
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory


def acct() -> str:
    return f"ACC-{uuid.uuid4().hex[:8]}"


async def funded(h: Harness, balance: float = 100_000.0, price: float = 50_000.0) -> str:
    account = acct()
    await h.pnl(account, balance)
    await h.tick("BTCUSDT", price)
    await h.settle()
    return account


async def test_check_when_everything_fits_and_full_asked_then_approves_with_post_trade_metrics(
    harness: Harness,
) -> None:
    account = await funded(harness)
    reply = await harness.check(
        account,
        "BTCUSDT",
        "BUY",
        0.5,
        50_000.0,
        strategy_id="s1",
        metadata={"ignored": True},
        detail="full",
    )
    assert reply["approved"] is True
    assert reply["rejection_reason"] is None
    assert reply["risk_level"] == "LOW"
    m = reply["post_trade_metrics"]
    assert m["gross_exposure"] == pytest.approx(25_000.0)
    assert m["leverage"] == pytest.approx(0.25)
    assert m["margin_ratio"] == pytest.approx(100_000.0 / 2_500.0)
    assert reply["worker_id"] == harness.settings.worker_id
    assert reply["processing_time_us"] >= 0


async def test_check_when_account_never_seen_then_denies_unknown_account(harness: Harness) -> None:
    reply = await harness.check(acct(), "BTCUSDT", "BUY", 1.0, 50_000.0)
    assert (reply["approved"], reply["rejection_reason"]) == (False, "unknown_account")
    assert reply["risk_level"] == "HIGH"


async def test_check_when_market_order_has_no_mark_then_denies_no_market_price(
    harness: Harness,
) -> None:
    account = await funded(harness)
    reply = await harness.check(account, "NOPRICEUSDT", "BUY", 1.0)
    assert reply["rejection_reason"] == "no_market_price"


async def test_check_when_mark_is_stale_then_market_order_denied_but_limit_order_checked(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(mark_max_age=0.2)
    account = await funded(h)
    await asyncio.sleep(0.3)  # let the mark age past 0.2 s: the condition under test is age
    assert (await h.check(account, "BTCUSDT", "BUY", 0.1))["rejection_reason"] == "no_market_price"
    assert (await h.check(account, "BTCUSDT", "BUY", 0.1, 50_000.0))["approved"] is True


async def test_check_when_margin_short_then_denies_insufficient_margin(
    harness_factory: HarnessFactory,
) -> None:
    # 50 % margin: 250k of notional (2.5 × equity, within Max Order Size) needs 125k of margin
    harness = await harness_factory(margin_rates={"BTCUSDT": 0.5})
    account = await funded(harness)
    reply = await harness.check(account, "BTCUSDT", "BUY", 5.0, 50_000.0)
    assert reply["rejection_reason"] == "insufficient_margin"
    assert reply["risk_level"] == "BREACHED"


async def test_check_when_leverage_would_exceed_limit_then_denies_policy_violation(
    harness_factory: HarnessFactory,
) -> None:
    sink = ListSink()
    # the post-trade policies alone: Max Order Size would stop this order first
    post_trade = [p for p in default_policies() if p.metric not in ORDER_METRICS]
    h = await harness_factory(margin_rates={"BTCUSDT": 0.02}, sink=sink, policies=post_trade)
    account = await funded(h)
    reply = await h.check(account, "BTCUSDT", "BUY", 30.0, 50_000.0)  # 1.5M notional = 15x
    assert reply["rejection_reason"] == "policy_violation"
    assert reply["risk_level"] == "BREACHED"
    [violation] = reply["violations"]
    assert violation["policy_name"] == "Max Account Leverage"
    assert violation["metric"] == "leverage"
    assert violation["operator"] == "lte"
    assert violation["threshold"] == 10
    assert violation["value"] == pytest.approx(15.0)
    assert reply["post_trade_metrics"]["leverage"] == pytest.approx(15.0)
    [record] = sink.records
    assert isinstance(record, ViolationRecord)
    assert (record.source, record.action_taken, record.order_id, record.account_id) == (
        "pre_trade",
        "denied",
        reply["order_id"],
        account,
    )
    assert record.metric_value == pytest.approx(15.0)


async def test_check_when_soft_policy_violated_then_approves_with_warning(
    harness_factory: HarnessFactory,
) -> None:
    soft = Policy(
        "p-soft",
        "Order Size Warning",
        PolicyType.SOFT,
        Metric.ORDER_NOTIONAL,
        Operator.LTE,
        10_000.0,
        Scope.SYMBOL,
        "BTCUSDT",
    )
    h = await harness_factory(policies=[*default_policies(), soft])
    account = await funded(h)
    reply = await h.check(account, "BTCUSDT", "BUY", 0.5, 50_000.0)
    assert reply["approved"] is True
    assert [w["policy_name"] for w in reply["warnings"]] == ["Order Size Warning"]
    assert reply["risk_level"] == "HIGH"


async def test_check_when_global_halted_then_denies_emergency_stop_active(
    harness: Harness,
) -> None:
    account = await funded(harness)
    await operator.trip(
        harness.nc, harness.settings.kv_bucket, TradingState.HALTED, "test", "pytest", None
    )
    await wait_for(lambda: harness.worker.engine.states.global_value is not None)
    reply = await harness.check(account, "BTCUSDT", "SELL", 0.1, 50_000.0)
    assert reply["rejection_reason"] == "emergency_stop_active"
    assert reply["risk_level"] == "BREACHED"


async def test_check_when_account_reducing_then_only_strict_reductions_pass(
    harness: Harness,
) -> None:
    account = await funded(harness)
    await harness.position(account, "BTCUSDT", 2.0, 48_000.0)
    await harness.settle()
    await operator.trip(
        harness.nc,
        harness.settings.kv_bucket,
        TradingState.REDUCING,
        "wind down",
        "pytest",
        account,
    )
    await wait_for(lambda: harness.worker.engine.states.account_value(account) is not None)
    assert (await harness.check(account, "BTCUSDT", "BUY", 0.1, 50_000.0))[
        "rejection_reason"
    ] == "reducing_only"
    assert (await harness.check(account, "BTCUSDT", "SELL", 3.0, 50_000.0))[
        "rejection_reason"
    ] == "reducing_only"  # would flip to short
    assert (await harness.check(account, "ETHUSDT", "SELL", 1.0, 3_000.0))[
        "rejection_reason"
    ] == "reducing_only"  # no position to reduce
    assert (await harness.check(account, "BTCUSDT", "SELL", 2.0, 50_000.0))["approved"] is True


async def test_check_when_reduce_only_would_increase_then_denies(harness: Harness) -> None:
    account = await funded(harness)
    reply = await harness.check(account, "BTCUSDT", "BUY", 0.1, 50_000.0, reduce_only=True)
    assert reply["rejection_reason"] == "reduce_only_would_increase"


async def test_check_when_decision_raises_then_denies_internal_error(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await funded(harness)

    class BrokenEngine:
        """The worker's engine whose ``check`` raises (a compiled RiskEngine's method cannot
        be replaced on the instance, so the fault goes in the handler's reference to it)."""

        def __getattr__(self, name: str) -> object:
            return getattr(harness.worker.engine, name)

        def check(self, *args: object, **kwargs: object) -> None:
            raise ZeroDivisionError("injected fault")

    assert harness.worker.service is not None
    monkeypatch.setattr(harness.worker.service.checks, "_engine", BrokenEngine())
    reply = await harness.check(account, "BTCUSDT", "BUY", 0.1, 50_000.0)
    assert (reply["approved"], reply["rejection_reason"]) == (False, "internal_error")
    assert "injected" not in reply["reason"]  # nothing internal leaks


async def test_check_when_no_policies_loaded_then_denies_policies_unavailable(
    harness: Harness,
) -> None:
    account = await funded(harness)
    harness.worker.engine.policies = None
    reply = await harness.check(account, "BTCUSDT", "BUY", 0.1, 50_000.0)
    assert reply["rejection_reason"] == "policies_unavailable"


async def test_check_when_trading_state_bucket_unreadable_then_denies_trading_state_unknown(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(state_max_age=0.5, state_confirm_interval=0.1)
    account = await funded(h)
    assert (await h.check(account, "BTCUSDT", "BUY", 0.1, 50_000.0))["approved"] is True
    await h.nc.jetstream().delete_key_value(h.settings.kv_bucket)

    async def unknown() -> bool:
        reply = await h.check(account, "BTCUSDT", "BUY", 0.1, 50_000.0, dry_run=True)
        return reply["rejection_reason"] == "trading_state_unknown"

    await wait_for(unknown, 5.0, 0.05, "never denied trading_state_unknown")


async def test_check_when_dry_run_then_reserves_nothing(harness: Harness) -> None:
    account = await funded(harness)
    for _ in range(3):
        reply = await harness.check(
            account, "BTCUSDT", "BUY", 1.0, 50_000.0, dry_run=True, detail="full"
        )
        assert reply["approved"] is True
        assert reply["post_trade_metrics"]["pending_orders"] == 0
    assert len(harness.worker.engine.book.accounts[account].pending) == 0


async def test_check_when_approved_then_pending_until_filled(harness: Harness) -> None:
    account = await funded(harness)
    first = await harness.check(account, "BTCUSDT", "BUY", 1.0, 50_000.0, order_id="o-1")
    assert first["approved"] is True
    second = await harness.check(
        account, "BTCUSDT", "BUY", 1.0, 50_000.0, dry_run=True, detail="full"
    )
    assert second["post_trade_metrics"]["pending_orders"] == 1
    assert second["post_trade_metrics"]["leverage"] == pytest.approx(1.0)  # 50k pending + 50k
    await harness.fill(account, "BTCUSDT", "BUY", 1.0, 50_000.0, "o-1")
    await harness.settle()
    third = await harness.check(
        account, "BTCUSDT", "BUY", 1.0, 50_000.0, dry_run=True, detail="full"
    )
    assert third["post_trade_metrics"]["pending_orders"] == 0
    assert third["post_trade_metrics"]["gross_exposure"] == pytest.approx(100_000.0)


async def test_check_when_three_buys_of_400k_under_500k_caps_then_exactly_one_approved(
    harness_factory: HarnessFactory,
) -> None:
    caps = [
        Policy(
            "btc-cap",
            "BTC Position Cap",
            PolicyType.HARD,
            Metric.POSITION_NOTIONAL,
            Operator.LTE,
            500_000.0,
            Scope.SYMBOL,
            "BTCUSDT",
        ),
        Policy(
            "gross-cap",
            "Gross Cap",
            PolicyType.HARD,
            Metric.GROSS_EXPOSURE,
            Operator.LTE,
            500_000.0,
        ),
    ]
    h = await harness_factory(policies=[*default_policies(), *caps])
    account = await funded(h, balance=1_000_000.0)
    replies = [await h.check(account, "BTCUSDT", "BUY", 8.0, 50_000.0) for _ in range(3)]
    assert [r["approved"] for r in replies] == [True, False, False]
    for denied in replies[1:]:
        assert denied["rejection_reason"] == "policy_violation"
        assert {v["policy_name"] for v in denied["violations"]} == {"BTC Position Cap", "Gross Cap"}
        assert denied["post_trade_metrics"]["gross_exposure"] == pytest.approx(800_000.0)
        assert denied["post_trade_metrics"]["pending_orders"] == 1
    assert len(h.worker.engine.book.accounts[account].pending) == 1


async def test_burst_when_50_concurrent_orders_exceed_leverage_then_only_those_that_fit_approve(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(margin_rates={"BTCUSDT": 0.05})
    account = await funded(h)
    # 50 × 30k notional on 100k equity: 33 fit under leverage 10 (990k), 50 would be 15x.
    replies = await asyncio.gather(
        *(h.check(account, "BTCUSDT", "BUY", 0.6, 50_000.0, detail="full") for _ in range(50))
    )
    approved = [r for r in replies if r["approved"]]
    denied = {r["rejection_reason"] for r in replies if not r["approved"]}
    assert len(approved) == 33
    assert denied == {"policy_violation"}
    assert max(r["post_trade_metrics"]["leverage"] for r in approved) <= 10.0
