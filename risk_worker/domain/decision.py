"""The pre-trade check: trading state → account → price → margin → policies → decision.

Steps, stopping at the first denial (reason codes from :class:`DenyReason`):

1. (wire layer) malformed request → ``invalid_request``
2. trading state not confirmed recently → ``trading_state_unknown``
3. HALTED (the most restrictive of global, account, the order's strategy and its symbol) →
   ``emergency_stop_active``; REDUCING → ``reducing_only`` unless the order strictly reduces
   the existing position without flipping it
4. account never seen → ``unknown_account``; a ``reduce_only`` order that would not strictly
   reduce → ``reduce_only_would_increase``; an order that does not strictly reduce, on a symbol
   on the restricted list (global or the account's) → ``restricted_symbol``
5. market order without a fresh mark → ``no_market_price``; no policy set loaded →
   ``policies_unavailable``
5b. the order-level controls (:mod:`risk_worker.domain.controls`): ``rate_limited``,
   ``duplicate_order_id`` (or an idempotent retry, approved again with ``duplicate``),
   ``price_out_of_collar``, ``order_too_large``, ``too_many_open_orders``
6. margin for the risk-increasing part > available margin → ``insufficient_margin``
7. a hard or emergency policy violated post-trade → ``policy_violation`` (soft ones warn);
   strategy-scoped policies read the order's strategy's post-trade metrics
   (:mod:`~risk_worker.domain.strategy_check`). A strictly reducing order is not denied for a
   violation that already held before it.
   A hard or emergency VaR policy (:data:`~risk_worker.domain.policies.VAR_METRICS`) whose
   value is not computable (a held symbol has too little history) denies a risk-increasing
   order on a symbol short of history → ``insufficient_history``; other orders pass it.
8. (engine) any exception → ``internal_error``. Nothing approves by default.

Worst cases (issue 10): an order is valued (order notional, margin, reservation) at the higher
of its limit and the mark (the mark for a market order, the limit without a mark); its
simulated fill is at that price for a BUY and at the lower of limit and mark for a SELL, so the
simulation never books a profit that has not happened. "Strictly reduces" and the
risk-increasing part are measured against the held position with the account's other pending
orders of the order's side filled; the post-trade metrics count every live reservation as the
worst case of it filling (:mod:`risk_worker.domain.metrics`).
"""

from __future__ import annotations

from risk_worker.domain.book import Account, AccountBook
from risk_worker.domain.breaches import classify_breaches, full_metrics
from risk_worker.domain.controls import ControlStop, OrderRates, check_controls
from risk_worker.domain.equity_window import observe_equity
from risk_worker.domain.metrics import compute_metrics as _compute
from risk_worker.domain.metrics import simulate_fill
from risk_worker.domain.order import Decision, Order, deny, highest, level_from_top
from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.policies import Evaluation
from risk_worker.domain.policy_set import PolicySet
from risk_worker.domain.positions import risk_increasing_quantity, strictly_reduces
from risk_worker.domain.restricted import restricted_denial
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.strategy_check import strategy_views
from risk_worker.domain.trading_state import TradingStates
from risk_worker.domain.types import RiskLevel, TradingState
from risk_worker.domain.var import exposures, historical_var, post_trade_exposures
from risk_worker.domain.vocab import (
    DENY_REASON_EMERGENCY_STOP_ACTIVE,
    DENY_REASON_INSUFFICIENT_HISTORY,
    DENY_REASON_INSUFFICIENT_MARGIN,
    DENY_REASON_NO_MARKET_PRICE,
    DENY_REASON_POLICIES_UNAVAILABLE,
    DENY_REASON_POLICY_VIOLATION,
    DENY_REASON_REDUCE_ONLY_WOULD_INCREASE,
    DENY_REASON_REDUCING_ONLY,
    DENY_REASON_TRADING_STATE_UNKNOWN,
    DENY_REASON_UNKNOWN_ACCOUNT,
    RISK_LEVEL_BREACHED,
    SIDE_BUY,
    TRADING_STATE_ACTIVE,
    TRADING_STATE_HALTED,
    TRADING_STATE_REDUCING,
)


def check_order(
    order: Order,
    book: AccountBook,
    policies: PolicySet | None,
    states: TradingStates,
    state_confirmed: bool,
    config: RiskConfig,
    now_ms: int,
    rates: OrderRates | None = None,
    detail: bool = True,
) -> Decision:
    """Decide whether ``order`` may go; on approval (not dry run) reserve its headroom.

    Args:
        order: the validated order.
        book: the account book (the account's reservations and peak are updated).
        policies: the loaded policy set; None when none could be loaded (denied).
        states: the local copy of the trading states.
        state_confirmed: whether that copy was confirmed within the allowed age.
        config: risk parameters.
        now_ms: the worker's clock (ms since epoch).
        rates: the throttle's windows (``order_rate``); None: nothing counted.
        detail: whether an approval's ``utilization`` holds every policy's. False (a compact
            reply reads only the risk level) records the order-level controls' alone: the
            post-trade policies are assessed for the level and the violations, and recorded
            again only when one is violated. The decision is the same either way.
    """
    if not state_confirmed:
        return deny(DENY_REASON_TRADING_STATE_UNKNOWN, "trading state not confirmed recently")
    eff = states.effective(order.account_id, order.strategy_id, order.symbol)
    account = book.accounts.get(order.account_id)
    # The position the order acts on in the worst case: the held one once every other pending
    # order of the same side has filled and none of the other side. Two orders that each reduce
    # a position must not together flip it, and a pending order on the other side may never
    # fill.
    quantity = order.quantity
    signed = quantity if order.side is SIDE_BUY else -quantity  # order.signed_quantity
    if account is None:
        effective_qty = 0.0
    else:
        position = account.positions.get(order.symbol)
        effective_qty = 0.0 if position is None else position.quantity
        if len(account.pending):
            side = account.pending.sides(order.symbol, exclude=order.order_id)
            effective_qty += side.buy_qty if signed > 0.0 else -side.sell_qty
    reducing = strictly_reduces(effective_qty, signed)
    state = eff.state
    if state is not TRADING_STATE_ACTIVE:
        if state is TRADING_STATE_HALTED:
            why = eff.value.reason if eff.value else ""
            return deny(
                DENY_REASON_EMERGENCY_STOP_ACTIVE,
                f"{eff.scope} trading state HALTED: {why}",
                RISK_LEVEL_BREACHED,
                state,
            )
        if state is TRADING_STATE_REDUCING and not reducing:
            return deny(
                DENY_REASON_REDUCING_ONLY,
                f"{eff.scope} trading state REDUCING: only orders that reduce a position",
                RISK_LEVEL_BREACHED,
                state,
            )
    if account is None or not account.known:
        return deny(DENY_REASON_UNKNOWN_ACCOUNT, f"account {order.account_id} not seen yet")
    if order.reduce_only and not reducing:
        return deny(
            DENY_REASON_REDUCE_ONLY_WOULD_INCREASE,
            "reduce_only order would not strictly reduce the position",
            state=state,
        )
    if not reducing and states.restricted.nonempty:
        restricted = restricted_denial(order, states.restricted, state)
        if restricted is not None:
            return restricted
    price = order.price
    mark = book.marks.get(order.symbol)
    if price is None:
        if mark is None or now_ms - mark.received_ms > config.mark_max_age_ms:
            return deny(
                DENY_REASON_NO_MARKET_PRICE,
                f"no mark for {order.symbol} within {config.mark_max_age_ms} ms",
                state=state,
            )
        price = fill_price = mark.price
    else:
        # ``price`` values the order's notional, margin and reservation: the higher of limit
        # and mark. Its simulated fill never books a profit: a BUY fills at that higher price,
        # a SELL at the lower of limit and mark.
        fill_price = price
        if mark is not None:
            mark_price = mark.price
            if mark_price > price:
                price = mark_price
                if signed > 0.0:
                    fill_price = mark_price
            elif mark_price < price and signed < 0.0:
                fill_price = mark_price
    return _check_limits(
        order,
        account,
        book,
        policies,
        config,
        now_ms,
        price,
        fill_price,
        state,
        effective_qty,
        signed,
        rates,
        detail,
    )


def _check_limits(
    order: Order,
    account: Account,
    book: AccountBook,
    policies: PolicySet | None,
    config: RiskConfig,
    now_ms: int,
    price: float,
    fill_price: float,
    state: TradingState,
    effective_qty: float,
    signed: float,
    rates: OrderRates | None,
    detail: bool,
) -> Decision:
    if policies is None:
        return deny(DENY_REASON_POLICIES_UNAVAILABLE, "no policy set is loaded", state=state)
    # a compact check builds no per-symbol notional dict (notional_summary); a breach below
    # recomputes the full metrics before anything is classified or reported
    pre = _compute(account, book.marks, config, now_ms, order.order_id, detail)
    observe_equity(account, pre.equity, now_ms, config.trading_day, config.drawdown_window_ms)
    utilization: dict[str, float] = {}
    warnings: list[Evaluation] = []
    stop = check_controls(
        order,
        account,
        book.marks,
        policies.controls,
        rates,
        now_ms,
        price,
        pre.equity,
        utilization,
        warnings,
    )
    if stop is not None:
        return _stopped(stop, state, warnings, utilization)
    top = highest(utilization)  # the order-level controls', before the post-trade policies'
    rate = config.margin_rates.get(order.symbol, config.default_margin_rate)  # margin_rate()
    increasing = risk_increasing_quantity(effective_qty, signed)
    margin_needed = increasing * price * rate
    available = pre.equity - pre.position_margin  # pre.available_margin
    if margin_needed > 0.0 and margin_needed > available:
        return deny(
            DENY_REASON_INSUFFICIENT_MARGIN,
            f"margin needed {margin_needed:.2f} > available {available:.2f}",
            RISK_LEVEL_BREACHED,
            state,
        )
    post = simulate_fill(
        pre,
        account,
        book.marks,
        config,
        order.symbol,
        signed,
        fill_price,
        now_ms,
        order.order_id,
    )
    if policies.uses_var:
        pre_exposure = exposures(account, book.marks, order.order_id)
        post.var = historical_var(
            post_trade_exposures(
                pre_exposure, account, book.marks, order.symbol, signed, fill_price, order.order_id
            ),
            book.returns,
            config.var.min_samples,
            config.var.horizon_s,
            order.account_id,
        )
    notional = order.quantity * price
    strategy_pre = strategy_post = None
    if policies.strategy_scoped and order.strategy_id is not None:
        strategy_pre, strategy_post = strategy_views(
            order, order.strategy_id, account, book.marks, config, now_ms, pre.equity,
            post.equity, signed, fill_price,
        )  # fmt: skip
    account_id, symbol, strategy_id, quantity = (
        order.account_id, order.symbol, order.strategy_id, order.quantity
    )  # fmt: skip
    utilization, breaches, post_top = policies.assess_order(
        account_id, symbol, strategy_id, post, notional, quantity, utilization, strategy_post,
        detail,
    )  # fmt: skip
    violations: list[Evaluation] = []
    unknown_var: Evaluation | None = None
    if breaches:
        if pre.position_notional is None:  # compact: the full metrics, assessed again
            pre, post, breaches = full_metrics(
                order, account, book, policies, config, now_ms, signed, fill_price, post,
                notional, utilization, strategy_post,
            )  # fmt: skip
        reducing = strictly_reduces(effective_qty, signed)
        violations, unknown_var = classify_breaches(
            breaches, order, account, book, config, now_ms, pre, strategy_pre, reducing, warnings
        )
    if violations:
        if not detail:  # the denial's metrics carry every policy's utilization
            policies.assess_order(
                account_id, symbol, strategy_id, post, notional, quantity, utilization,
                strategy_post,
            )  # fmt: skip
        return Decision(
            False,
            DENY_REASON_POLICY_VIOLATION,
            violations[0].message,
            RISK_LEVEL_BREACHED,
            state,
            violations,
            warnings,
            post,
            utilization,
        )
    if unknown_var is not None and increasing > 0.0:
        lacking = () if post.var is None else post.var.lacking
        if order.symbol in lacking:
            return deny(
                DENY_REASON_INSUFFICIENT_HISTORY,
                f"{unknown_var.policy.name}: {unknown_var.policy.metric} not computable, "
                f"{order.symbol} has fewer than {config.var.min_samples} aligned returns; "
                f"only orders that reduce {order.symbol}",
                RISK_LEVEL_BREACHED,
                state,
            )
    level = level_from_top(post_top if post_top > top else top)
    reservation = None
    if not order.dry_run:
        reservation = _reserve(
            order, account, signed, increasing, price, rate, config, now_ms, level
        )
    message = "approved" if not warnings else f"approved with warning: {warnings[0].message}"
    return Decision(
        True,
        None,
        message,
        level,
        state,
        [],
        warnings,
        post,
        utilization,
        reservation,
    )


def _reserve(
    order: Order,
    account: Account,
    signed: float,
    increasing: float,
    price: float,
    rate: float,
    config: RiskConfig,
    now_ms: int,
    level: RiskLevel,
) -> PendingOrder:
    """Reserve an approved order's headroom in its account (see :class:`PendingOrder`)."""
    reservation = PendingOrder(
        order.order_id,
        order.symbol,
        signed,
        increasing,
        price,
        rate,
        now_ms + config.pending_ttl_ms,
        order.strategy_id,
        order.quantity,
        order.price,
        order.order_type,
        level,
    )
    account.pending.add(reservation)
    return reservation


def _stopped(
    stop: ControlStop,
    state: TradingState,
    warnings: list[Evaluation],
    utilization: dict[str, float],
) -> Decision:
    """The decision of a check the order-level controls stopped: a denial, or an idempotent
    retry approved again (the original approval's risk level, no new reservation)."""
    duplicate_of = stop.duplicate_of
    if stop.reason is None and duplicate_of is not None:
        return Decision(
            True,
            None,
            stop.message,
            duplicate_of.risk_level,
            state,
            warnings=warnings,
            utilization=utilization,
            duplicate=True,
        )
    return Decision(
        False,
        stop.reason,
        stop.message,
        RISK_LEVEL_BREACHED,
        state,
        stop.violations,
        warnings,
        None,
        utilization,
    )
