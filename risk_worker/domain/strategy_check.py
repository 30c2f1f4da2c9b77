"""The strategy's part of a pre-trade check: its metrics before and after the order.

When a strategy-scoped policy is loaded (:attr:`~risk_worker.domain.policy_set.PolicySet.
strategy_scoped`) and an order names a strategy, the check computes that strategy's metrics
before the order (observing its peak PnL and day start, as the account's equity is observed) and
as if the order had filled at the check's fill price; strategy-scoped policies read the latter
(:mod:`~risk_worker.domain.strategy_metrics`). A strictly reducing order is not denied for a
strategy violation that already held before it, as for the account's.
"""

from __future__ import annotations

from risk_worker.domain.book import Account
from risk_worker.domain.mark import Mark
from risk_worker.domain.order import Order
from risk_worker.domain.pending import SymbolPending
from risk_worker.domain.policies import READS_ACCOUNT, READS_SYMBOL, Evaluation, strategy_reader_of
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.strategy_book import observe_strategy
from risk_worker.domain.strategy_metrics import compute_strategy_metrics
from risk_worker.domain.strategy_values import StrategyMetrics


def strategy_before(
    order: Order,
    strategy_id: str,
    account: Account,
    marks: dict[str, Mark],
    config: RiskConfig,
    now_ms: int,
    equity: float,
    reserved: tuple[int, dict[str, SymbolPending]] | None = None,
) -> StrategyMetrics:
    """The strategy's metrics before the order (its own earlier reservation left out), the
    account's equity then being ``equity`` (quote); ``reserved``: the strategy's reservations
    without the order's (``PendingBook.of_strategy``), when the caller has them."""
    return compute_strategy_metrics(
        account, strategy_id, marks, config, now_ms, equity, order.order_id, None, reserved
    )


def strategy_views(
    order: Order,
    strategy_id: str,
    account: Account,
    marks: dict[str, Mark],
    config: RiskConfig,
    now_ms: int,
    pre_equity: float,
    post_equity: float,
    signed_qty: float,
    fill_price: float,
) -> tuple[StrategyMetrics | None, StrategyMetrics]:
    """The strategy's metrics before the order (None when the strategy has no book: nothing to
    observe; :func:`strategy_before` computes them when a reducing order needs them) and as if
    the order had filled.

    Args:
        order: the order (its own earlier reservation is left out of both).
        strategy_id: the order's strategy.
        account: its account; the strategy's book, when there is one and the account's
            balance is known, observes the pre-trade PnL (peak, day start).
        pre_equity / post_equity: the account's equity before and after the simulated fill
            (quote).
        signed_qty: the order's signed base quantity; fill_price: the check's fill price.
    """
    pre = None
    reserved = account.pending.of_strategy(strategy_id, order.order_id)  # for both views
    book = account.strategies.get(strategy_id)
    if book is not None:
        pre = strategy_before(
            order, strategy_id, account, marks, config, now_ms, pre_equity, reserved
        )
        if account.balance_known:
            observe_strategy(book, pre.pnl, pre_equity, now_ms, config.trading_day)
    post = compute_strategy_metrics(
        account,
        strategy_id,
        marks,
        config,
        now_ms,
        post_equity,
        order.order_id,
        (order.symbol, signed_qty, fill_price),
        reserved,
    )
    return pre, post


def violated_before(ev: Evaluation, pre: StrategyMetrics) -> bool:
    """Whether a strategy-scoped post-trade policy was already violated on the pre-trade
    strategy metrics."""
    policy = ev.policy
    reads, read = strategy_reader_of(policy.metric, policy.operator)
    if reads == READS_ACCOUNT:
        value = read(pre)
    elif reads == READS_SYMBOL:
        value = read(pre, None)
    else:
        return False
    return not policy.holds(value)
