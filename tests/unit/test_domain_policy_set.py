"""The prepared policy set: assess_order says exactly what evaluating every policy would."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from risk_worker.domain.policies import ORDER_METRICS, READERS, Policy, metric_value
from risk_worker.domain.policy_set import (
    LOWER_OVER_ZERO,
    OTHER_BOUND,
    UPPER_OVER_ZERO,
    PolicySet,
    prepare,
    rule_value,
)
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.strategy_metrics import STRATEGY_READERS
from risk_worker.domain.strategy_values import StrategyMetrics
from risk_worker.domain.types import Metric, Operator, PolicyType, Scope
from risk_worker.domain.var_result import VarResult

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def metrics(equity: float, notional: dict[str, float], peak: float = 1_250.0) -> AccountMetrics:
    gross = sum(notional.values())
    return AccountMetrics(
        equity=equity,
        balance=equity - 50.0,
        unrealized_pnl=50.0,
        gross_exposure=gross,
        net_exposure=gross / 3.0,
        net_exposure_low=-gross / 4.0,
        position_margin=gross * 0.1,
        pending_notional=100.0,
        pending_margin=10.0,
        pending_orders=1,
        open_positions=len(notional),
        position_notional=notional,
        stale_symbols=(),
        peak_equity=peak,
        day_start_equity=1_100.0,
    )


def random_policies(rng: random.Random, n: int) -> list[Policy]:
    policies = []
    for k in range(n):
        scope = rng.choice(list(Scope))
        scope_id = rng.choice([None, None, "a1", "a2", "BTCUSDT", "ETHUSDT", "s1", "s2"])
        metric = rng.choice(list(Metric))
        if metric not in STRATEGY_READERS and metric not in ORDER_METRICS:
            scope = rng.choice([Scope.ACCOUNT, Scope.SYMBOL])  # a strategy has none of its own
        policies.append(
            Policy(
                f"id-{k}",
                f"p{k % 5}",  # some names repeat: their utilization is the highest
                rng.choice(list(PolicyType)),
                metric,
                rng.choice(list(Operator)),
                rng.choice([0.0, 1.0, 0.5, -100.0, 2_000.0, rng.uniform(-5.0, 5.0)]),
                scope,
                scope_id,
                rng.random() < 0.9,
                rng.randint(1, 20),
            )
        )
    return policies


def strategy_metrics(strategy_id: str, equity: float) -> StrategyMetrics:
    return StrategyMetrics(
        strategy_id, 900.0, 400.0, -300.0, {"BTCUSDT": 600.0, "ETHUSDT": 300.0}, 2,
        -40.0, 15.0, 80.0, 1_200.0, 10.0, 1_100.0, equity,
    )  # fmt: skip


def expected(
    ps: PolicySet, *args: object, strategy: StrategyMetrics | None = None
) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """What the decision computed before policies were prepared: every Evaluation, then a loop."""
    utilization: dict[str, float] = {}
    breaches = []
    for ev in ps.evaluate_order(*args, strategy=strategy):  # type: ignore[arg-type]
        p = ev.policy
        utilization[p.name] = max(utilization.get(p.name, 0.0), p.utilization(ev.value))
        if ev.violated:
            breaches.append((p.id, ev.value))
    return utilization, breaches


@pytest.mark.parametrize("seed", range(40))
def test_assess_order_when_random_policies_then_matches_evaluating_each_one(seed):
    rng = random.Random(seed)
    ps = PolicySet(random_policies(rng, rng.randint(1, 15)))
    books = [
        metrics(1_000.0, {"BTCUSDT": 3_000.0, "ETHUSDT": 1_000.0}),
        metrics(-20.0, {"BTCUSDT": 3_000.0}),  # infinite leverage and concentration
        metrics(0.0, {}, peak=0.0),
        metrics(5e5, {"SOLUSDT": 1e-3}),
    ]
    for m, account, symbol, strategy in itertools.product(
        books, ("a1", "a2"), SYMBOLS, (None, "s1", "s2")
    ):
        args = (account, symbol, strategy, m, rng.uniform(0.0, 3_000.0), rng.uniform(0.0, 3.0))
        sm = None if strategy is None else strategy_metrics(strategy, m.equity)
        got_utilization, got_breaches, _ = ps.assess_order(*args, strategy=sm)
        utilization, breaches = expected(ps, *args, strategy=sm)
        assert got_utilization == utilization
        assert list(got_utilization) == list(utilization)  # same order
        # repr: NaN (a VaR metric not computable) equals itself only by identity, which the
        # compiled core's floats (unboxed, boxed again) do not keep
        assert [(ev.policy.id, repr(ev.value)) for ev in got_breaches] == [
            (pid, repr(value)) for pid, value in breaches
        ]
        assert all(ev.violated for ev in got_breaches)


@pytest.mark.parametrize("op", list(Operator))
@pytest.mark.parametrize("metric", list(READERS))  # the order-level controls' are not prepared
@pytest.mark.parametrize("symbol", [None, "ETHUSDT", "XRPUSDT"])
def test_prepare_when_any_metric_then_reads_what_metric_value_reads(metric, symbol, op):
    m = metrics(800.0, {"BTCUSDT": 3_000.0, "ETHUSDT": 1_000.0})
    m.var = VarResult(100.0, 200.0, 180.0, 300)  # the VaR readers' NaN (unknown) ≠ itself
    rule = prepare(Policy("i", "n", PolicyType.HARD, metric, op, 1.0))
    value = rule_value(rule, m, symbol, (250.0, 0.5))
    assert value == metric_value(metric, m, symbol, 250.0, 0.5, op)


@pytest.mark.parametrize(
    ("op", "threshold", "form"),
    [
        (Operator.LTE, 10.0, UPPER_OVER_ZERO),
        (Operator.LT, 0.5, UPPER_OVER_ZERO),
        (Operator.LTE, 0.0, OTHER_BOUND),
        (Operator.LT, -1.0, OTHER_BOUND),
        (Operator.GTE, 1.0, LOWER_OVER_ZERO),
        (Operator.GT, 0.25, LOWER_OVER_ZERO),
        (Operator.GT, -1_000.0, OTHER_BOUND),
        (Operator.GTE, 0.0, OTHER_BOUND),
    ],
)
def test_prepare_when_bound_and_threshold_sign_given_then_utilization_form(op, threshold, form):
    policy = Policy("i", "n", PolicyType.HARD, Metric.LEVERAGE, op, threshold)
    *_, holds, prepared_threshold, prepared_form = prepare(policy)
    assert prepared_form == form
    for value in (-1.0, 0.0, 0.25, 7.0, 12.0, math.inf):
        assert holds(value, prepared_threshold) is policy.holds(value)
