"""The loaded policy set, prepared once so that evaluating it does no look-ups by name.

When a set is loaded each enabled policy becomes a :data:`Rule`: its metric reader
(:func:`~risk_worker.domain.policies.reader_of`), its comparison
(:data:`~risk_worker.domain.policies.COMPARE`) and whether its utilization is the plain
``max(0, value) / threshold`` are resolved there, not per check. A pre-trade check then reads
only the policies' utilization and the violated ones (:meth:`PolicySet.assess_order`);
:class:`~risk_worker.domain.policies.Evaluation` objects are made for violations alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from risk_worker.domain.controls import ControlRules
from risk_worker.domain.notional_summary import NotionalSummary
from risk_worker.domain.policies import (
    COMPARE,
    ORDER_METRICS,
    READS_ACCOUNT,
    READS_SYMBOL,
    UPPER_BOUNDS,
    VAR_METRICS,
    Evaluation,
    Policy,
    reader_of,
    strategy_reader_of,
    validate_policy,
)
from risk_worker.domain.readings import (
    INF,
    OP_CODE,
    OP_GT,
    OP_LT,
    OP_LTE,
    account_readings,
    slot_of,
    strategy_readings,
    symbol_reading,
)
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.strategy_metrics import empty_strategy
from risk_worker.domain.strategy_values import StrategyMetrics
from risk_worker.domain.vocab import SCOPE_ACCOUNT, SCOPE_STRATEGY, SCOPE_SYMBOL

ACCOUNT_SCOPE: Final = 0
SYMBOL_SCOPE: Final = 1
STRATEGY_SCOPE: Final = 2
"""Index of a rule's scope in an order's ``(account_id, symbol, strategy_id)``."""
_SCOPE_INDEX = {
    SCOPE_ACCOUNT: ACCOUNT_SCOPE,
    SCOPE_SYMBOL: SYMBOL_SCOPE,
    SCOPE_STRATEGY: STRATEGY_SCOPE,
}

UPPER_OVER_ZERO: Final = 0
LOWER_OVER_ZERO: Final = 1
OTHER_BOUND: Final = 2
"""Forms of a rule's utilization (see :meth:`~risk_worker.domain.policies.Policy.utilization`)."""

Rule = tuple[
    Policy,
    str,
    bool,
    int,
    str | None,
    int,
    Callable[..., float],
    Callable[[float, float], bool],
    float,
    int,
]
"""One enabled policy prepared for evaluation (a plain tuple: it unpacks fastest).

Fields: the policy; its name (the key of its limit utilization); whether another enabled
policy has the same name (their utilization is the highest); its scope as an index into
``(account_id, symbol, strategy_id)`` and its scope id (None for all); how its metric is read
and the reader (:func:`~risk_worker.domain.policies.reader_of`, on the strategy's metrics for
strategy-scoped rules: :func:`~risk_worker.domain.policies.strategy_reader_of`; symbol-scoped
rules read at the order's symbol, the others at None: the largest position); its operator as
``holds(value, threshold)``; the threshold (the metric's unit); and the form of its
utilization: ``UPPER_OVER_ZERO`` (lt/lte, threshold > 0: ``max(0, value) / threshold``),
``LOWER_OVER_ZERO`` (gt/gte, threshold > 0: ``threshold / value``, ∞ when value ≤ 0) or
``OTHER_BOUND`` (:meth:`~risk_worker.domain.policies.Policy.utilization` decides).
"""


def prepare(policy: Policy, shared_name: bool = False) -> Rule:
    """The :data:`Rule` of a (validated) policy; ``shared_name``: another one has its name."""
    if policy.scope is SCOPE_STRATEGY:
        reads, read = strategy_reader_of(policy.metric, policy.operator)
    else:
        reads, read = reader_of(policy.metric, policy.operator)
    t = policy.threshold
    return (
        policy,
        policy.name,
        shared_name,
        _SCOPE_INDEX[policy.scope],
        policy.scope_id,
        reads,
        read,
        COMPARE[policy.operator],
        t,
        OTHER_BOUND
        if t <= 0.0
        else UPPER_OVER_ZERO
        if policy.operator in UPPER_BOUNDS
        else LOWER_OVER_ZERO,
    )


FastRule = tuple[Policy, str, bool, int, str | None, int, int, float, int]
"""A :data:`Rule` as a pre-trade check reads it (:meth:`PolicySet.assess_order`): the policy,
its name, whether the name is shared, its scope index and scope id, its metric's slot
(:func:`~risk_worker.domain.readings.slot_of`), its operator's code
(:data:`~risk_worker.domain.readings.OP_CODE`), the threshold and the utilization form."""


def fast_rule(rule: Rule) -> FastRule:
    """The :data:`FastRule` of a prepared rule."""
    policy = rule[0]
    return (
        policy,
        rule[1],
        rule[2],
        rule[3],
        rule[4],
        slot_of(policy.metric, policy.operator),
        OP_CODE[policy.operator],
        rule[8],
        rule[9],
    )


def assess_rules(
    rules: tuple[FastRule, ...],
    readings: list[float],
    notionals: dict[str, float] | None,
    summary: NotionalSummary | None,
    equity: float,
    keys: tuple[str, str, str | None],
    utilization: dict[str, float] | None,
    breaches: list[Evaluation],
) -> float:
    """Record the utilization of each rule that applies to an order (unless ``utilization`` is
    None) and append the violated ones to ``breaches`` (see :meth:`PolicySet.assess_order`);
    returns the highest utilization (NaN skipped; 0.0 when no rule applies).

    Args:
        rules: account- and symbol-scoped rules read on the account's metrics, or
            strategy-scoped ones read on the strategy's.
        readings: those metrics by slot (:func:`~risk_worker.domain.readings.account_readings`
            or :func:`~risk_worker.domain.readings.strategy_readings`).
        notionals: their ``position_notional`` (symbol → quote); ``equity``: the equity a
            concentration divides by (quote). A compact check's account metrics have None
            there and their ``summary`` instead (``readings.symbol_reading``: LookupError when
            it cannot answer).
        keys: the order's ``(account_id, symbol, strategy_id)``.
        utilization: policy name → fraction of its limit used (filled here), or None.
        breaches: violated rules, appended in order.
    """
    symbol = keys[1]
    top = 0.0
    for policy, name, shared, scope, scope_id, slot, op, threshold, form in rules:
        if scope_id is not None and scope_id != keys[scope]:
            continue
        if slot >= 0:
            value = readings[slot]
        else:
            where = symbol if scope == SYMBOL_SCOPE else None
            value = symbol_reading(slot, notionals, equity, where, summary)
        # Policy.utilization's formulas, without a call for the two common forms
        if form == UPPER_OVER_ZERO:
            used = (value if value > 0.0 else 0.0) / threshold
        elif form == LOWER_OVER_ZERO:
            used = threshold / value if value > 0.0 else INF
        else:
            used = policy.utilization(value)
        top = max(top, used)
        if utilization is not None:
            if shared:
                before = utilization.get(name)
                if before is not None:
                    used = max(before, used)
            utilization[name] = used
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
            breaches.append(
                Evaluation(policy, value, symbol if scope == SYMBOL_SCOPE else None, True)
            )
    return top


def rule_value(
    rule: Rule,
    m: AccountMetrics | StrategyMetrics,
    symbol: str | None,
    order: tuple[float, float],
) -> float:
    """The rule's metric on ``m`` (the strategy's metrics for a strategy-scoped rule; at
    ``symbol`` if symbol-dependent; ``order`` is (notional, quantity))."""
    reads, read = rule[5], rule[6]
    if reads == READS_ACCOUNT:
        return read(m)
    return read(m, symbol) if reads == READS_SYMBOL else read(order)


def _evaluation(
    rule: Rule,
    m: AccountMetrics | StrategyMetrics,
    symbol: str | None,
    order: tuple[float, float],
) -> Evaluation:
    value = rule_value(rule, m, symbol, order)
    return Evaluation(rule[0], value, symbol, not rule[7](value, rule[8]))


class PolicySet:
    """An immutable, prepared set of enabled policies, in evaluation order.

    Policies are kept in (priority, name) order: lower priority numbers are evaluated and
    reported first; for an order the account-scoped ones come first, then the symbol-scoped,
    then the strategy-scoped (only when the order names a strategy; read on the strategy's
    metrics, :mod:`~risk_worker.domain.strategy_metrics`). Policies on order-level
    metrics (:data:`~risk_worker.domain.policies.ORDER_METRICS`) are the order-level controls
    (``controls``, :mod:`risk_worker.domain.controls`), checked before the margin; the
    post-trade evaluation (:meth:`assess_order`, :meth:`evaluate_order`) covers the others.
    """

    __slots__ = (
        "_all",
        "_fast_strategy",
        "_strategy",
        "_without_strategy",
        "account_rules",
        "controls",
        "policies",
        "strategy_scoped",
        "uses_var",
    )

    def __init__(self, policies: Iterable[Policy]) -> None:
        ordered = sorted((validate_policy(p) for p in policies), key=lambda p: (p.priority, p.name))
        self.policies: tuple[Policy, ...] = tuple(ordered)
        enabled = [p for p in ordered if p.enabled]
        self.controls = ControlRules(p for p in enabled if p.metric in ORDER_METRICS)
        post_trade = [p for p in enabled if p.metric not in ORDER_METRICS]
        names = Counter(p.name for p in post_trade)
        rules = [prepare(p, names[p.name] > 1) for p in post_trade]
        rules.sort(key=lambda r: r[3])  # by scope; stable, so (priority, name) within one
        self._all: tuple[Rule, ...] = tuple(rules)
        self._without_strategy = tuple(r for r in rules if r[3] != STRATEGY_SCOPE)
        self._strategy = tuple(r for r in rules if r[3] == STRATEGY_SCOPE)
        self.account_rules = tuple(fast_rule(r) for r in self._without_strategy)
        """The account- and symbol-scoped rules as a check and the monitor read them."""
        self._fast_strategy = tuple(fast_rule(r) for r in self._strategy)
        self.strategy_scoped = bool(self._strategy)
        """Whether a post-trade policy is strategy-scoped: a check of an order naming a
        strategy then computes the strategy's metrics, and the monitor each strategy's."""
        self.uses_var = any(p.metric in VAR_METRICS for p in post_trade)
        """Whether an enabled policy limits a VaR metric: a check then computes the VaR."""

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
        utilization: dict[str, float] | None = None,
        strategy: StrategyMetrics | None = None,
        record: bool = True,
    ) -> tuple[dict[str, float], list[Evaluation], float]:
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
            utilization: the dict to fill (it may hold the order-level controls' already);
                a new one when None.
            strategy: the strategy's post-trade metrics, read by strategy-scoped policies
                (None: the strategy holds nothing,
                :func:`~risk_worker.domain.strategy_metrics.empty_strategy`).
            record: False leaves ``utilization`` as given (a compact approval reads only the
                highest, and the violations; nothing is stored per policy).

        Returns:
            (policy name → fraction of its limit used, the highest of the policies sharing a
            name, in evaluation order; an Evaluation of every violated policy, in order; the
            highest utilization of these policies, NaN skipped, 0.0 when none applies).
        """
        if utilization is None:
            utilization = {}
        filled = utilization if record else None
        breaches: list[Evaluation] = []
        keys = (account_id, symbol, strategy_id)
        top = 0.0
        rules = self.account_rules
        if rules:
            top = assess_rules(
                rules,
                account_readings(m),
                m.position_notional,
                m.notional_summary,
                m.equity,
                keys,
                filled,
                breaches,
            )
        if strategy_id is not None and self._fast_strategy:
            # the strategy-scoped rules come last (by scope), read on the strategy's metrics
            if strategy is None:
                strategy = empty_strategy(strategy_id, m.equity)
            used = assess_rules(
                self._fast_strategy,
                strategy_readings(strategy),
                strategy.position_notional,
                None,
                strategy.account_equity,
                keys,
                filled,
                breaches,
            )
            top = used if used > top else top
        return utilization, breaches, top

    def evaluate_order(
        self,
        account_id: str,
        symbol: str,
        strategy_id: str | None,
        m: AccountMetrics,
        order_notional: float,
        order_quantity: float,
        strategy: StrategyMetrics | None = None,
    ) -> list[Evaluation]:
        """Evaluate every policy that applies to an order on its post-trade metrics (the
        strategy's for strategy-scoped ones; None: the strategy holds nothing)."""
        order = (order_notional, order_quantity)
        keys = (account_id, symbol, strategy_id)
        rules = self._without_strategy if strategy_id is None else self._all
        if strategy is None and strategy_id is not None:
            strategy = empty_strategy(strategy_id, m.equity)
        return [
            _evaluation(
                rule,
                strategy if rule[3] == STRATEGY_SCOPE and strategy is not None else m,
                symbol if rule[3] == SYMBOL_SCOPE else None,
                order,
            )
            for rule in rules
            if rule[4] is None or rule[4] == keys[rule[3]]
        ]

    def evaluate_strategy(self, m: StrategyMetrics) -> list[Evaluation]:
        """Evaluate the strategy-scoped policies that apply to one strategy on its metrics
        (the monitor: every strategy book of every account)."""
        no_order = (0.0, 0.0)
        sid = m.strategy_id
        return [
            _evaluation(rule, m, None, no_order)
            for rule in self._strategy
            if rule[4] is None or rule[4] == sid
        ]

    def evaluate_account(self, account_id: str, m: AccountMetrics) -> Iterator[Evaluation]:
        """Evaluate the account- and symbol-scoped policies (no order metrics) for the monitor."""
        no_order = (0.0, 0.0)
        for rule in self._without_strategy:
            policy, scope, scope_id = rule[0], rule[3], rule[4]
            if policy.metric in ORDER_METRICS:
                continue
            if scope == ACCOUNT_SCOPE:
                if scope_id is None or scope_id == account_id:
                    yield _evaluation(rule, m, None, no_order)
                continue
            for symbol in m.held_notionals() if scope_id is None else (scope_id,):
                yield _evaluation(rule, m, symbol, no_order)
