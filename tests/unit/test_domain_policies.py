"""Policies: operators, utilization, metric values, scopes, ordering and validation."""

from __future__ import annotations

import math
import uuid

import pytest

from risk_worker.domain.policies import (
    Policy,
    PolicyError,
    default_policies,
    metric_value,
    validate_policy,
)
from risk_worker.domain.policy_set import PolicySet
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.strategy_values import StrategyMetrics
from risk_worker.domain.types import Metric, Operator, PolicyType, Scope


def policy(
    name: str = "p",
    metric: Metric = Metric.LEVERAGE,
    op: Operator = Operator.LTE,
    threshold: float = 10.0,
    *,
    type_: PolicyType = PolicyType.HARD,
    scope: Scope = Scope.ACCOUNT,
    scope_id: str | None = None,
    enabled: bool = True,
    priority: int = 100,
) -> Policy:
    return Policy(
        f"id-{name}", name, type_, metric, op, threshold, scope, scope_id, enabled, priority
    )


def metrics(**overrides) -> AccountMetrics:
    # equity 1000, BTC notional 3000, ETH notional 1000 (short), pending 1000 / margin 100
    values = {
        "equity": 1_000.0,
        "balance": 900.0,
        "unrealized_pnl": 100.0,
        "gross_exposure": 5_000.0,  # positions 4000 + the reservation's worst case 1000
        "net_exposure": 2_000.0,
        "net_exposure_low": 1_500.0,
        "position_margin": 500.0,  # reservation included
        "pending_notional": 1_000.0,
        "pending_margin": 100.0,
        "pending_orders": 1,
        "open_positions": 2,
        "position_notional": {"BTCUSDT": 3_000.0, "ETHUSDT": 1_000.0},
        "stale_symbols": (),
        "peak_equity": 1_250.0,
        "day_start_equity": 1_100.0,
    }
    values.update(overrides)
    return AccountMetrics(**values)


@pytest.mark.parametrize(
    ("op", "threshold", "value", "holds"),
    [
        (Operator.LT, 10.0, 9.99, True),
        (Operator.LT, 10.0, 10.0, False),
        (Operator.LT, 10.0, 10.01, False),
        (Operator.LTE, 10.0, 9.99, True),
        (Operator.LTE, 10.0, 10.0, True),
        (Operator.LTE, 10.0, 10.01, False),
        (Operator.GT, 1.0, 0.99, False),
        (Operator.GT, 1.0, 1.0, False),
        (Operator.GT, 1.0, 1.01, True),
        (Operator.GTE, 1.0, 0.99, False),
        (Operator.GTE, 1.0, 1.0, True),
        (Operator.GTE, 1.0, 1.01, True),
        (Operator.GTE, 1.0, math.inf, True),  # no margin used
        (Operator.LTE, 10.0, math.inf, False),  # leverage with equity ≤ 0
    ],
)
def test_policy_holds_when_value_compared_then_holds_only_while_value_op_threshold(
    op, threshold, value, holds
):
    assert policy(op=op, threshold=threshold).holds(value) is holds


@pytest.mark.parametrize(
    ("op", "threshold", "value", "expected"),
    [
        (Operator.LTE, 10.0, 5.0, 0.5),
        (Operator.LTE, 10.0, 10.0, 1.0),
        (Operator.LT, 10.0, 12.0, 1.2),
        (Operator.LTE, 10.0, -3.0, 0.0),
        (Operator.GTE, 1.0, 2.0, 0.5),
        (Operator.GTE, 1.0, 1.0, 1.0),
        (Operator.GT, 1.0, 0.5, 2.0),
        (Operator.GTE, 1.0, 0.0, math.inf),
        (Operator.GTE, 1.0, math.inf, 0.0),
        (Operator.GTE, -1_000.0, -500.0, 0.5),  # loss limit
        (Operator.GTE, -1_000.0, -1_500.0, 1.5),
        (Operator.GTE, -1_000.0, 200.0, 0.0),
        (Operator.LTE, 0.0, 0.0, 0.0),  # unscalable: 0 while holding
        (Operator.LTE, 0.0, 1.0, 1.0),  # 1 when violated
        (Operator.LT, -5.0, -6.0, 0.0),
        (Operator.LT, -5.0, -4.0, 1.0),
    ],
)
def test_policy_utilization_when_value_given_then_fraction_of_limit(op, threshold, value, expected):
    assert policy(op=op, threshold=threshold).utilization(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("metric", "symbol", "expected"),
    [
        (Metric.LEVERAGE, None, 5.0),  # 5000 / 1000
        (Metric.MARGIN_RATIO, None, 2.0),  # 1000 / 500
        (Metric.DRAWDOWN_DAILY, None, 100.0 / 1_100.0),
        (Metric.DRAWDOWN_MAX, None, 0.2),
        (Metric.DAILY_PNL, None, -100.0),
        (Metric.GROSS_EXPOSURE, None, 5_000.0),
        (Metric.NET_EXPOSURE, None, 2_000.0),
        (Metric.CONCENTRATION, "ETHUSDT", 1.0),
        (Metric.CONCENTRATION, None, 3.0),  # largest
        (Metric.POSITION_NOTIONAL, "BTCUSDT", 3_000.0),
        (Metric.POSITION_NOTIONAL, None, 3_000.0),
        (Metric.POSITION_NOTIONAL, "SOLUSDT", 0.0),
        (Metric.OPEN_POSITIONS, None, 2.0),
        (Metric.ORDER_NOTIONAL, None, 250.0),
        (Metric.ORDER_QUANTITY, None, 0.5),
    ],
)
def test_metric_value_when_metric_named_then_reads_matching_number(metric, symbol, expected):
    assert metric_value(metric, metrics(), symbol, 250.0, 0.5) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (Operator.LTE, 2_000.0),  # every pending BUY fills
        (Operator.LT, 2_000.0),
        (Operator.GTE, 1_500.0),  # every pending SELL fills
        (Operator.GT, 1_500.0),
    ],
)
def test_metric_value_when_net_exposure_then_each_bound_reads_its_worst_case(op, expected):
    assert metric_value(Metric.NET_EXPOSURE, metrics(), None, op=op) == expected


@pytest.mark.parametrize("metric", [Metric.ORDER_NOTIONAL, Metric.ORDER_QUANTITY])
def test_metric_value_when_order_metric_without_order_then_none(metric):
    assert metric_value(metric, metrics(), None) is None


@pytest.mark.parametrize(
    ("scope", "scope_id", "account_id", "symbol", "strategy_id", "applies"),
    [
        (Scope.ACCOUNT, None, "a1", "BTCUSDT", None, True),
        (Scope.ACCOUNT, "a1", "a1", "BTCUSDT", None, True),
        (Scope.ACCOUNT, "a2", "a1", "BTCUSDT", None, False),
        (Scope.SYMBOL, None, "a1", "BTCUSDT", None, True),
        (Scope.SYMBOL, "BTCUSDT", "a1", "BTCUSDT", None, True),
        (Scope.SYMBOL, "ETHUSDT", "a1", "BTCUSDT", None, False),
        (Scope.STRATEGY, None, "a1", "BTCUSDT", "s1", True),
        (Scope.STRATEGY, None, "a1", "BTCUSDT", None, False),  # order names no strategy
        (Scope.STRATEGY, "s1", "a1", "BTCUSDT", "s1", True),
        (Scope.STRATEGY, "s2", "a1", "BTCUSDT", "s1", False),
    ],
)
def test_evaluate_order_when_scoped_then_applies_only_to_matching_scope(
    scope, scope_id, account_id, symbol, strategy_id, applies
):
    p = policy(metric=Metric.OPEN_POSITIONS, threshold=1.0, scope=scope, scope_id=scope_id)
    strategy = None
    if strategy_id is not None:  # strategy-scoped policies read the strategy's metrics
        held = {"BTCUSDT": 10.0, "ETHUSDT": 5.0}
        strategy = StrategyMetrics(
            strategy_id, 15.0, 15.0, 15.0, held, 0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0
        )
    evaluations = PolicySet([p]).evaluate_order(
        account_id, symbol, strategy_id, metrics(), 250.0, 0.5, strategy
    )
    assert len(evaluations) == (1 if applies else 0)
    if applies:
        assert evaluations[0].violated is True
        assert evaluations[0].value == 2.0


def test_evaluate_order_when_symbol_scoped_then_uses_the_order_symbol_value():
    p = policy(metric=Metric.CONCENTRATION, threshold=2.0, scope=Scope.SYMBOL)
    [ev] = PolicySet([p]).evaluate_order("a1", "ETHUSDT", None, metrics(), 1.0, 1.0)
    assert ev.symbol == "ETHUSDT"
    assert ev.value == pytest.approx(1.0)
    assert ev.violated is False


def test_evaluate_order_when_policy_disabled_then_ignored():
    enabled = policy("on", threshold=1.0)
    disabled = policy("off", threshold=1.0, enabled=False)
    evaluations = PolicySet([enabled, disabled]).evaluate_order(
        "a1", "BTCUSDT", None, metrics(), 1.0, 1.0
    )
    assert [e.policy.name for e in evaluations] == ["on"]


def test_evaluate_order_when_priorities_differ_then_lower_number_first_then_name():
    ps = PolicySet(
        [
            policy("c", priority=50),
            policy("b", priority=10),
            policy("z", priority=5),
            policy("a", priority=10),
        ]
    )
    evaluations = ps.evaluate_order("a1", "BTCUSDT", None, metrics(), 1.0, 1.0)
    assert [e.policy.name for e in evaluations] == ["z", "a", "b", "c"]


def test_evaluate_account_when_monitoring_then_skips_order_metrics_and_strategies():
    ps = PolicySet(
        [
            policy("lev", Metric.LEVERAGE, threshold=4.0),
            policy("order", Metric.ORDER_NOTIONAL, threshold=1.0),
            policy("strat", Metric.LEVERAGE, threshold=1.0, scope=Scope.STRATEGY),
            policy("conc", Metric.CONCENTRATION, threshold=2.0, scope=Scope.SYMBOL),
            policy("sym-order", Metric.ORDER_QUANTITY, threshold=1.0, scope=Scope.SYMBOL),
            policy(
                "eth",
                Metric.POSITION_NOTIONAL,
                threshold=1.0,
                scope=Scope.SYMBOL,
                scope_id="ETHUSDT",
            ),
            policy("other", Metric.LEVERAGE, threshold=1.0, scope_id="a2"),
        ]
    )
    got = [(e.policy.name, e.symbol, e.violated) for e in ps.evaluate_account("a1", metrics())]
    assert sorted(got, key=str) == sorted(
        [
            ("lev", None, True),
            ("conc", "BTCUSDT", True),
            ("conc", "ETHUSDT", False),
            ("eth", "ETHUSDT", True),
        ],
        key=str,
    )


@pytest.mark.parametrize(
    ("threshold", "scope_id"),
    [(math.nan, None), (math.inf, None), (-math.inf, None), (1.0, "")],
)
def test_validate_policy_when_threshold_not_finite_or_empty_scope_then_policy_error(
    threshold, scope_id
):
    bad = policy(threshold=threshold, scope_id=scope_id)
    with pytest.raises(PolicyError):
        validate_policy(bad)
    with pytest.raises(PolicyError):
        PolicySet([policy("fine"), bad])


def test_validate_policy_when_valid_then_returns_it():
    p = policy(threshold=0.0, scope_id="a1")
    assert validate_policy(p) is p


@pytest.mark.parametrize(
    ("name", "type_", "metric", "op", "threshold"),
    [
        ("Max Account Leverage", PolicyType.HARD, Metric.LEVERAGE, Operator.LTE, 10.0),
        ("Min Margin Ratio", PolicyType.HARD, Metric.MARGIN_RATIO, Operator.GTE, 1.0),
        ("Daily Drawdown Warning", PolicyType.SOFT, Metric.DRAWDOWN_DAILY, Operator.LTE, 0.10),
        ("Max Drawdown", PolicyType.HARD, Metric.DRAWDOWN_MAX, Operator.LTE, 0.20),
        ("Emergency Drawdown Stop", PolicyType.EMERGENCY, Metric.DRAWDOWN_MAX, Operator.LTE, 0.25),
    ],
)
def test_default_policies_when_listed_then_match_the_specification(
    name, type_, metric, op, threshold
):
    by_name = {p.name: p for p in default_policies()}
    p = by_name[name]
    assert (p.type, p.metric, p.operator, p.threshold) == (type_, metric, op, threshold)
    assert p.scope is Scope.ACCOUNT
    assert p.enabled is True


def test_default_policies_when_counted_then_nine_with_unique_ids():
    policies = default_policies()
    assert len(policies) == 9
    assert len({p.id for p in policies}) == 9
    assert len(PolicySet(policies)) == 9
    assert all(
        p.id == str(uuid.uuid5(uuid.NAMESPACE_URL, f"risk-worker/policy/{p.name}"))
        for p in policies[-4:]
    )


def test_evaluation_message_when_violated_then_names_policy_metric_and_limit():
    p = policy("Max Account Leverage", threshold=10.0)
    [ev] = PolicySet([p]).evaluate_order("a1", "BTCUSDT", None, metrics(equity=400.0), 1.0, 1.0)
    assert ev.violated is True
    assert ev.message == "Max Account Leverage: leverage 12.5 violates lte 10"
