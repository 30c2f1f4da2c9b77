"""Which post-trade breaches deny an order (step 7 of :mod:`~risk_worker.domain.decision`).

A breached soft policy warns. A breached hard or emergency one denies, unless the order
strictly reduces the position and the policy was already breached before it (not for order
metrics; a strategy-scoped one on the strategy's pre-trade metrics): then it warns. A VaR
metric that is not computable (NaN) denies nothing here; the first hard or emergency one is
returned for the ``insufficient_history`` rule.
"""

from __future__ import annotations

from risk_worker.domain.book import Account, AccountBook
from risk_worker.domain.metrics import compute_metrics, simulate_fill
from risk_worker.domain.order import Order
from risk_worker.domain.policies import ORDER_METRICS, VAR_METRICS, Evaluation, metric_value
from risk_worker.domain.policy_set import PolicySet
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.strategy_check import strategy_before, violated_before
from risk_worker.domain.strategy_values import StrategyMetrics
from risk_worker.domain.var import exposures, historical_var
from risk_worker.domain.vocab import POLICY_TYPE_SOFT, SCOPE_STRATEGY


def classify_breaches(
    breaches: list[Evaluation],
    order: Order,
    account: Account,
    book: AccountBook,
    config: RiskConfig,
    now_ms: int,
    pre: AccountMetrics,
    strategy_pre: StrategyMetrics | None,
    reducing: bool,
    warnings: list[Evaluation],
) -> tuple[list[Evaluation], Evaluation | None]:
    """Split an order's post-trade breaches (module docstring).

    Args:
        breaches: the violated policies, in evaluation order.
        order: the order; ``account`` and ``book``: its account and the book.
        config: risk parameters; ``now_ms``: the worker's clock (ms since epoch).
        pre: the account's pre-trade metrics (their VaR is computed here when a reducing order
            needs it).
        strategy_pre: the order's strategy's pre-trade metrics, or None (computed here when a
            reducing order needs them).
        reducing: whether the order strictly reduces the position.
        warnings: the breaches that only warn are appended here.

    Returns:
        (the breaches that deny, in order; the first hard or emergency policy whose VaR metric
        is not computable, or None).
    """
    violations: list[Evaluation] = []
    unknown_var: Evaluation | None = None
    for ev in breaches:
        if ev.value != ev.value:  # NaN: a VaR metric that is not computable
            if unknown_var is None and ev.policy.type is not POLICY_TYPE_SOFT:
                unknown_var = ev
            continue
        if reducing and pre.var is None and ev.policy.metric in VAR_METRICS:
            pre.var = historical_var(  # for _held_before, only when it is asked
                exposures(account, book.marks, order.order_id),
                book.returns,
                config.var.min_samples,
                config.var.horizon_s,
                order.account_id,
            )
        sid = order.strategy_id
        if reducing and strategy_pre is None and sid and ev.policy.scope is SCOPE_STRATEGY:
            strategy_pre = strategy_before(  # for _held_before, only when it is asked
                order, sid, account, book.marks, config, now_ms, pre.equity
            )
        if ev.policy.type is POLICY_TYPE_SOFT or (reducing and _held_before(ev, pre, strategy_pre)):
            warnings.append(ev)
        else:
            violations.append(ev)
    return violations, unknown_var


def _held_before(ev: Evaluation, pre: AccountMetrics, strategy: StrategyMetrics | None) -> bool:
    """Whether a violated policy was already violated before the order (not for order metrics;
    a strategy-scoped one on the strategy's pre-trade metrics)."""
    if ev.policy.metric in ORDER_METRICS:
        return False
    if ev.policy.scope is SCOPE_STRATEGY:
        return strategy is not None and violated_before(ev, strategy)
    if ev.policy.metric in VAR_METRICS and pre.var is None:
        return False
    value = metric_value(ev.policy.metric, pre, ev.symbol, op=ev.policy.operator)
    return value is not None and not ev.policy.holds(value)


def full_metrics(
    order: Order,
    account: Account,
    book: AccountBook,
    policies: PolicySet,
    config: RiskConfig,
    now_ms: int,
    signed: float,
    fill_price: float,
    compact_post: AccountMetrics,
    notional: float,
    utilization: dict[str, float],
    strategy_post: StrategyMetrics | None,
) -> tuple[AccountMetrics, AccountMetrics, list[Evaluation]]:
    """A compact check that found a breach: its pre- and post-trade metrics with every
    symbol's notional (the classification reads the pre-trade ones at any symbol, a denial
    reports them), and the breaches assessed on them (``utilization`` is left as it is;
    ``notional``: the order's, quote).
    The values are those the compact metrics held (the same book, marks and clock); the
    post-trade VaR is carried over."""
    pre = compute_metrics(account, book.marks, config, now_ms, order.order_id)
    post = simulate_fill(
        pre, account, book.marks, config, order.symbol, signed, fill_price, now_ms, order.order_id
    )
    post.var = compact_post.var
    _, breaches, _ = policies.assess_order(
        order.account_id, order.symbol, order.strategy_id, post, notional, order.quantity,
        utilization, strategy_post, False,
    )  # fmt: skip
    return pre, post, breaches
