"""The monitor's reading of an account's policies: limit utilization and violations in one pass.

The monitor (:func:`~risk_worker.domain.monitor.assess_account`) evaluates every account every
interval, so it reads the prepared rules (:data:`~risk_worker.domain.policy_set.FastRule`) on one
table of the account's metrics (:func:`~risk_worker.domain.readings.account_readings`), as a
pre-trade check does, and makes an :class:`~risk_worker.domain.policies.Evaluation` only for a
violated policy. The result is that of :meth:`PolicySet.evaluate_account
<risk_worker.domain.policy_set.PolicySet.evaluate_account>` followed by: skip a NaN value (a VaR
that is not computable is neither held nor violated); ``utilization[name] =
max(utilization.get(name, 0), policy.utilization(value))``; keep the violated evaluations, in
order. ``tests/unit/test_domain_account_rules.py`` holds the two equal on random books and
policies.
"""

from __future__ import annotations

from risk_worker.domain.policies import Evaluation
from risk_worker.domain.policy_set import (
    ACCOUNT_SCOPE,
    LOWER_OVER_ZERO,
    SYMBOL_SCOPE,
    UPPER_OVER_ZERO,
    FastRule,
)
from risk_worker.domain.readings import INF, OP_GT, OP_LT, OP_LTE, symbol_reading


def assess_account_rules(
    rules: tuple[FastRule, ...],
    readings: list[float],
    notionals: dict[str, float],
    equity: float,
    account_id: str,
) -> tuple[dict[str, float], list[Evaluation]]:
    """Limit utilization and violations of an account's account- and symbol-scoped policies.

    An account-scoped rule applies when it has no scope id or the account's; a symbol-scoped
    rule is read at its scope id, or at every symbol the account holds when it has none (its
    utilization is then the highest over them, and each violated symbol is an evaluation).

    Args:
        rules: the policy set's account- and symbol-scoped rules, in evaluation order.
        readings: the account's metrics by slot
            (:func:`~risk_worker.domain.readings.account_readings`).
        notionals: its ``position_notional`` (symbol → worst-case notional, quote).
        equity: its equity (quote), the denominator of a concentration.
        account_id: the account.

    Returns:
        (policy name → fraction of its limit used, the highest of the readings of a name, in
        evaluation order; an Evaluation of every violated reading, in order).
    """
    utilization: dict[str, float] = {}
    violations: list[Evaluation] = []
    for policy, name, _shared, scope, scope_id, slot, op, threshold, form in rules:
        if scope == ACCOUNT_SCOPE:
            if scope_id is not None and scope_id != account_id:
                continue
            where: list[str | None] = [None]
        elif scope_id is None:
            where = list(notionals)
        else:
            where = [scope_id]
        for symbol in where:
            value = readings[slot] if slot >= 0 else symbol_reading(slot, notionals, equity, symbol)
            if value != value:  # noqa: PLR0124  NaN: a VaR that is not computable
                continue
            # Policy.utilization's formulas, without a call for the two common forms
            if form == UPPER_OVER_ZERO:
                used = (value if value > 0.0 else 0.0) / threshold
            elif form == LOWER_OVER_ZERO:
                used = threshold / value if value > 0.0 else INF
            else:
                used = policy.utilization(value)
            before = utilization.get(name, 0.0)
            utilization[name] = used if used > before else before  # max(before, used)
            # readings.holds, inline: value <op> threshold
            if op == OP_LTE:
                ok = value <= threshold
            elif op == OP_LT:
                ok = value < threshold
            elif op == OP_GT:
                ok = value > threshold
            else:
                ok = value >= threshold
            if not ok:
                violations.append(
                    Evaluation(policy, value, symbol if scope == SYMBOL_SCOPE else None, True)
                )
    return utilization, violations
