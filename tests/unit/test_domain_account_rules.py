"""The monitor's one-pass reading of an account's policies equals the evaluations it replaced.

Reference: :meth:`PolicySet.evaluate_account` followed by the loop the monitor ran before
(skip NaN; ``utilization[name] = max(utilization.get(name, 0), policy.utilization(value))``;
keep the violated), on random metrics (edge values, infinities, a VaR not computable) and
random policy sets (every post-trade metric and operator, thresholds of each sign and zero,
shared names, account and symbol scopes with and without a scope id).
"""

from __future__ import annotations

import math
import random

import pytest

from risk_worker.domain.account_rules import assess_account_rules
from risk_worker.domain.policies import ORDER_METRICS, Evaluation, Policy
from risk_worker.domain.policy_set import PolicySet
from risk_worker.domain.readings import account_readings
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.types import Metric, Operator, PolicyType, Scope
from tests.unit.test_domain_readings import SYMBOLS, account_metrics, same

POST_TRADE = [m for m in Metric if m not in ORDER_METRICS]
THRESHOLDS = (0.0, 1.0, 0.5, 3.0, -1000.0, 250_000.0, 1e-9, -0.25)


def random_policies(rng: random.Random) -> list[Policy]:
    policies = []
    for i in range(rng.randint(0, 14)):
        scope = rng.choice((Scope.ACCOUNT, Scope.SYMBOL))
        if scope is Scope.ACCOUNT:
            scope_id = rng.choice((None, None, "a1", "a2"))
        else:
            scope_id = rng.choice((None, None, *SYMBOLS, "XRPUSDT"))
        policies.append(
            Policy(
                id=f"p{i}",
                name=rng.choice(("n1", "n2", "n3", f"own{i}")),
                type=rng.choice(list(PolicyType)),
                metric=rng.choice(POST_TRADE),
                operator=rng.choice(list(Operator)),
                threshold=rng.choice(THRESHOLDS) * rng.choice((1.0, 1.0, 3.7)),
                scope=scope,
                scope_id=scope_id,
                enabled=rng.random() < 0.9,
                priority=rng.randint(1, 3),
            )
        )
    return policies


def reference(
    ps: PolicySet, account_id: str, m: AccountMetrics
) -> tuple[dict[str, float], list[Evaluation]]:
    utilization: dict[str, float] = {}
    violations: list[Evaluation] = []
    for ev in ps.evaluate_account(account_id, m):
        if math.isnan(ev.value):
            continue
        p = ev.policy
        utilization[p.name] = max(utilization.get(p.name, 0.0), p.utilization(ev.value))
        if ev.violated:
            violations.append(ev)
    return utilization, violations


@pytest.mark.parametrize("seed", range(300))
def test_assess_account_rules_when_random_book_and_policies_then_as_the_evaluations(seed):
    rng = random.Random(seed)
    ps = PolicySet(random_policies(rng))
    for _ in range(10):
        m = account_metrics(rng)
        account_id = rng.choice(("a1", "a2"))
        want_util, want_violations = reference(ps, account_id, m)
        util, violations = assess_account_rules(
            ps.account_rules, account_readings(m), m.position_notional, m.equity, account_id
        )
        assert list(util) == list(want_util)
        assert all(same(util[k], want_util[k]) for k in want_util), (util, want_util)
        assert [(v.policy.id, v.symbol, v.violated) for v in violations] == [
            (v.policy.id, v.symbol, v.violated) for v in want_violations
        ]
        assert all(same(a.value, b.value) for a, b in zip(violations, want_violations, strict=True))


def test_assess_account_rules_when_symbol_policy_breached_at_two_symbols_then_both_reported():
    ps = PolicySet(
        [
            Policy("p1", "max notional", PolicyType.HARD, Metric.POSITION_NOTIONAL,
                   Operator.LTE, 100.0, Scope.SYMBOL)
        ]
    )  # fmt: skip
    notionals = {"BTCUSDT": 150.0, "ETHUSDT": 50.0, "SOLUSDT": 300.0}
    m = account_metrics(random.Random(1))
    m.position_notional = notionals
    util, violations = assess_account_rules(
        ps.account_rules, account_readings(m), notionals, m.equity, "a1"
    )
    assert util == {"max notional": 3.0}
    assert [(v.symbol, v.value) for v in violations] == [("BTCUSDT", 150.0), ("SOLUSDT", 300.0)]
