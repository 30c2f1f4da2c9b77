"""The loaded policy set, prepared once so that evaluating it does no look-ups by name.

When a set is loaded each enabled policy becomes a :class:`Rule`: its metric reader
(:data:`~risk_worker.domain.policies.VALUE_OF`), its comparison
(:data:`~risk_worker.domain.policies.COMPARE`) and whether its utilization is the plain
``max(0, value) / threshold`` are resolved there, not per check. A pre-trade check then reads
only the policies' utilization and the violated ones (:meth:`PolicySet.assess_order`);
:class:`~risk_worker.domain.policies.Evaluation` objects are made for violations alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from risk_worker.domain.metrics import AccountMetrics
from risk_worker.domain.policies import (
    COMPARE,
    ORDER_METRICS,
    UPPER_BOUNDS,
    VALUE_OF,
    Evaluation,
    Policy,
    ValueOf,
    validate_policy,
)
from risk_worker.domain.types import Scope


class Rule(NamedTuple):
    """One enabled policy prepared for evaluation.

    Attributes:
        policy: the policy.
        name: its name (the key of its limit utilization).
        scope_id: the account, symbol or strategy it is limited to; None for all.
        value_of: reads the policy's metric (see :data:`~risk_worker.domain.policies.ValueOf`).
        holds: the policy's operator, ``holds(value, threshold)``.
        threshold: the limit, in the metric's unit.
        scaled: an upper bound (lt/lte) with threshold > 0, whose utilization is
            ``max(0, value) / threshold``; otherwise :meth:`Policy.utilization` decides.
    """

    policy: Policy
    name: str
    scope_id: str | None
    value_of: ValueOf
    holds: Callable[[float, float], bool]
    threshold: float
    scaled: bool


def prepare(policy: Policy) -> Rule:
    """The :class:`Rule` of a (validated) policy."""
    t = policy.threshold
    return Rule(
        policy,
        policy.name,
        policy.scope_id,
        VALUE_OF[policy.metric],
        COMPARE[policy.operator],
        t,
        policy.operator in UPPER_BOUNDS and t > 0.0,
    )


class OrderAssessment(NamedTuple):
    """The policies that apply to an order, evaluated on its post-trade metrics.

    Attributes:
        utilization: policy name → fraction of its limit used (the highest of the policies
            sharing a name), in evaluation order.
        breaches: an :class:`~risk_worker.domain.policies.Evaluation` of every violated
            policy, in evaluation order.
    """

    utilization: dict[str, float]
    breaches: list[Evaluation]


Group = tuple[tuple[Rule, ...], str, str | None]
"""Rules of one scope, the order's id for that scope, and the symbol their values are read at."""


class PolicySet:
    """An immutable, prepared set of enabled policies, split by scope for fast look-up.

    Policies are kept in (priority, name) order: lower priority numbers are evaluated and
    reported first; for an order the account-scoped ones come first, then the symbol-scoped,
    then the strategy-scoped.
    """

    __slots__ = ("_account", "_strategy", "_symbol", "policies")

    def __init__(self, policies: Iterable[Policy]) -> None:
        ordered = sorted((validate_policy(p) for p in policies), key=lambda p: (p.priority, p.name))
        self.policies: tuple[Policy, ...] = tuple(ordered)
        enabled = [prepare(p) for p in ordered if p.enabled]
        self._account = tuple(r for r in enabled if r.policy.scope is Scope.ACCOUNT)
        self._symbol = tuple(r for r in enabled if r.policy.scope is Scope.SYMBOL)
        self._strategy = tuple(r for r in enabled if r.policy.scope is Scope.STRATEGY)

    def __len__(self) -> int:
        return len(self.policies)

    def _groups(self, account_id: str, symbol: str, strategy_id: str | None) -> tuple[Group, ...]:
        if strategy_id is None or not self._strategy:
            return ((self._account, account_id, None), (self._symbol, symbol, symbol))
        return (
            (self._account, account_id, None),
            (self._symbol, symbol, symbol),
            (self._strategy, strategy_id, None),
        )

    def assess_order(
        self,
        account_id: str,
        symbol: str,
        strategy_id: str | None,
        m: AccountMetrics,
        order_notional: float,
        order_quantity: float,
    ) -> OrderAssessment:
        """Utilization and violations of every policy that applies to an order.

        Equivalent to :meth:`evaluate_order` followed by ``utilization[name] =
        max(utilization.get(name, 0), policy.utilization(value))`` over its evaluations and a
        filter on the violated ones, without an Evaluation per policy that holds.

        Args:
            account_id: the order's account.
            symbol: the order's symbol (symbol-scoped policies read their metric there).
            strategy_id: the order's strategy; None means no strategy-scoped policy applies.
            m: the post-trade metrics.
            order_notional: quantity × valuation price (quote).
            order_quantity: the order's quantity (base units).
        """
        utilization: dict[str, float] = {}
        breaches: list[Evaluation] = []
        for rules, key, where in self._groups(account_id, symbol, strategy_id):
            for rule in rules:
                policy, name, scope_id, value_of, holds, threshold, scaled = rule
                if scope_id is not None and scope_id != key:
                    continue
                value = value_of(m, where, order_notional, order_quantity)
                # max(0, value) / threshold, as Policy.utilization computes it
                used = (
                    (value if value > 0.0 else 0.0) / threshold
                    if scaled
                    else policy.utilization(value)
                )
                before = utilization.get(name)
                utilization[name] = used if before is None else max(before, used)
                if not holds(value, threshold):
                    breaches.append(Evaluation(policy, value, where, True))
        return OrderAssessment(utilization, breaches)

    def evaluate_order(
        self,
        account_id: str,
        symbol: str,
        strategy_id: str | None,
        m: AccountMetrics,
        order_notional: float,
        order_quantity: float,
    ) -> list[Evaluation]:
        """Evaluate every policy that applies to an order on its post-trade metrics."""
        out: list[Evaluation] = []
        for rules, key, where in self._groups(account_id, symbol, strategy_id):
            for r in rules:
                if r.scope_id is None or r.scope_id == key:
                    value = r.value_of(m, where, order_notional, order_quantity)
                    out.append(Evaluation(r.policy, value, where, not r.holds(value, r.threshold)))
        return out

    def evaluate_account(self, account_id: str, m: AccountMetrics) -> Iterator[Evaluation]:
        """Evaluate the account- and symbol-scoped policies (no order metrics) for the monitor."""
        for r in self._account:
            if r.policy.metric not in ORDER_METRICS and (
                r.scope_id is None or r.scope_id == account_id
            ):
                value = r.value_of(m, None, 0.0, 0.0)
                yield Evaluation(r.policy, value, None, not r.holds(value, r.threshold))
        for r in self._symbol:
            if r.policy.metric in ORDER_METRICS:
                continue
            symbols = m.position_notional if r.scope_id is None else (r.scope_id,)
            for symbol in symbols:
                value = r.value_of(m, symbol, 0.0, 0.0)
                yield Evaluation(r.policy, value, symbol, not r.holds(value, r.threshold))
