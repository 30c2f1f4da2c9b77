"""The loaded policy set, prepared once so that evaluating it does no look-ups by name.

When a set is loaded each enabled policy becomes a :data:`Rule`: its metric reader
(:data:`~risk_worker.domain.policies.READERS`), its comparison
(:data:`~risk_worker.domain.policies.COMPARE`) and whether its utilization is the plain
``max(0, value) / threshold`` are resolved there, not per check. A pre-trade check then reads
only the policies' utilization and the violated ones (:meth:`PolicySet.assess_order`);
:class:`~risk_worker.domain.policies.Evaluation` objects are made for violations alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from risk_worker.domain.metrics import AccountMetrics
from risk_worker.domain.policies import (
    COMPARE,
    ORDER_METRICS,
    READERS,
    READS_ACCOUNT,
    READS_SYMBOL,
    UPPER_BOUNDS,
    Evaluation,
    Policy,
    validate_policy,
)
from risk_worker.domain.types import Scope

Rule = tuple[
    Policy, str, str | None, int, Callable[..., float], Callable[[float, float], bool], float, bool
]
"""One enabled policy prepared for evaluation (a plain tuple: it unpacks fastest).

Fields: the policy; its name (the key of its limit utilization); its scope id (None for all);
how its metric is read and the reader (:data:`~risk_worker.domain.policies.READERS`); its
operator as ``holds(value, threshold)``; the threshold (the metric's unit); and ``scaled``:
an upper bound (lt/lte) with threshold > 0, whose utilization is ``max(0, value) /
threshold``; for the others :meth:`~risk_worker.domain.policies.Policy.utilization` decides.
"""


def prepare(policy: Policy) -> Rule:
    """The :data:`Rule` of a (validated) policy."""
    reads, read = READERS[policy.metric]
    t = policy.threshold
    return (
        policy,
        policy.name,
        policy.scope_id,
        reads,
        read,
        COMPARE[policy.operator],
        t,
        policy.operator in UPPER_BOUNDS and t > 0.0,
    )


def rule_value(
    rule: Rule, m: AccountMetrics, symbol: str | None, order: tuple[float, float]
) -> float:
    """The rule's metric on ``m`` (at ``symbol`` if symbol-dependent; ``order`` is
    (notional, quantity))."""
    reads, read = rule[3], rule[4]
    if reads == READS_ACCOUNT:
        return read(m)
    return read(m, symbol) if reads == READS_SYMBOL else read(order)


def _evaluation(
    rule: Rule, m: AccountMetrics, symbol: str | None, order: tuple[float, float]
) -> Evaluation:
    value = rule_value(rule, m, symbol, order)
    return Evaluation(rule[0], value, symbol, not rule[5](value, rule[6]))


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
        self._account = tuple(r for r in enabled if r[0].scope is Scope.ACCOUNT)
        self._symbol = tuple(r for r in enabled if r[0].scope is Scope.SYMBOL)
        self._strategy = tuple(r for r in enabled if r[0].scope is Scope.STRATEGY)

    def __len__(self) -> int:
        return len(self.policies)

    def assess_order(
        self,
        account_id: str,
        symbol: str,
        strategy_id: str | None,
        m: AccountMetrics,
        order_notional: float,
        order_quantity: float,
    ) -> tuple[dict[str, float], list[Evaluation]]:
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

        Returns:
            (policy name → fraction of its limit used, the highest of the policies sharing a
            name, in evaluation order; an Evaluation of every violated policy, in order).
        """
        utilization: dict[str, float] = {}
        breaches: list[Evaluation] = []
        order = (order_notional, order_quantity)
        for rules, key, where in self._groups(account_id, symbol, strategy_id):
            for policy, name, scope_id, reads, read, holds, threshold, scaled in rules:
                if scope_id is not None and scope_id != key:
                    continue
                if reads == READS_ACCOUNT:
                    value = read(m)
                else:
                    value = read(m, where) if reads == READS_SYMBOL else read(order)
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
        return utilization, breaches

    def _groups(self, account_id: str, symbol: str, strategy_id: str | None) -> tuple[Group, ...]:
        if strategy_id is None or not self._strategy:
            return ((self._account, account_id, None), (self._symbol, symbol, symbol))
        return (
            (self._account, account_id, None),
            (self._symbol, symbol, symbol),
            (self._strategy, strategy_id, None),
        )

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
        order = (order_notional, order_quantity)
        return [
            _evaluation(rule, m, where, order)
            for rules, key, where in self._groups(account_id, symbol, strategy_id)
            for rule in rules
            if rule[2] is None or rule[2] == key
        ]

    def evaluate_account(self, account_id: str, m: AccountMetrics) -> Iterator[Evaluation]:
        """Evaluate the account- and symbol-scoped policies (no order metrics) for the monitor."""
        no_order = (0.0, 0.0)
        for rule in self._account:
            if rule[0].metric not in ORDER_METRICS and (rule[2] is None or rule[2] == account_id):
                yield _evaluation(rule, m, None, no_order)
        for rule in self._symbol:
            if rule[0].metric in ORDER_METRICS:
                continue
            symbols = m.position_notional if rule[2] is None else (rule[2],)
            for symbol in symbols:
                yield _evaluation(rule, m, symbol, no_order)
