"""Order-level controls: throttle, duplicate order id, price collar, order size, open orders.

Erroneous-order controls (issue 12; ESMA RTS 6 art. 15, SEC 15c3-5 (c)(1)(ii), CME Globex
price banding and messaging controls, FIA best practices). They run in
:func:`~risk_worker.domain.decision.check_order` after the trading state, the account and the
price, before the margin and the post-trade policies, in this order, stopping at the first
denial:

1. ``rate_limited``: a policy on ``order_rate`` (checks per second) — the scope's non-dry-run
   checks in the sliding second ending now, this one and denied ones included (a flood stays
   throttled); dry runs are neither counted nor throttled. Account- and symbol-scoped policies
   read the account's window, strategy-scoped ones the strategy's (on this instance).
2. ``duplicate_order_id`` (always on): a non-dry-run check whose ``order_id`` is a live
   reservation of the account. The same content (symbol, side, quantity, limit price, type)
   is an idempotent retry: approved again, nothing reserved again, ``duplicate``; other
   content is denied.
3. ``price_out_of_collar``: ``price_deviation`` (fraction) — how far a LIMIT order is priced
   through the mark on its aggressive side: BUY ``(limit − mark) / mark``, SELL ``(mark −
   limit) / mark``, 0 when passive. Market orders and orders on a symbol without a mark are not
   collared. A symbol-scoped policy naming the order's symbol replaces the unscoped collars.
4. ``order_too_large``: ``order_quantity`` (base units), ``order_notional`` (quote, valued at
   the higher of the limit and the mark) and ``order_equity_fraction`` (that notional over
   the account's equity; infinite when equity ≤ 0).
5. ``too_many_open_orders``: ``open_orders`` — the live reservations of the scope (the
   account's; those on the order's symbol; those of the order's strategy) with this order.

Every control applies to reducing orders too. A soft policy on these metrics warns; hard and
emergency ones deny. Their utilization joins the decision's ``limit_utilization``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Final

from risk_worker.domain.book import Account
from risk_worker.domain.mark import Mark
from risk_worker.domain.order import Order
from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.policies import UPPER_BOUNDS, Evaluation, Policy
from risk_worker.domain.readings import OP_CODE, OP_GT, OP_LT, OP_LTE
from risk_worker.domain.risk_metrics import INF
from risk_worker.domain.types import DenyReason, Metric
from risk_worker.domain.vocab import (
    DENY_REASON_DUPLICATE_ORDER_ID,
    DENY_REASON_ORDER_TOO_LARGE,
    DENY_REASON_PRICE_OUT_OF_COLLAR,
    DENY_REASON_RATE_LIMITED,
    DENY_REASON_TOO_MANY_OPEN_ORDERS,
    METRIC_OPEN_ORDERS,
    METRIC_ORDER_EQUITY_FRACTION,
    METRIC_ORDER_NOTIONAL,
    METRIC_ORDER_QUANTITY,
    METRIC_ORDER_RATE,
    METRIC_PRICE_DEVIATION,
    POLICY_TYPE_SOFT,
    SCOPE_ACCOUNT,
    SCOPE_STRATEGY,
    SCOPE_SYMBOL,
    SIDE_BUY,
)

WINDOW_MS: Final = 1_000
"""The throttle's sliding window (ms): ``order_rate`` is a count per second."""

_SCOPE_INDEX = {SCOPE_ACCOUNT: 0, SCOPE_SYMBOL: 1, SCOPE_STRATEGY: 2}
_QUANTITY, _NOTIONAL, _EQUITY_FRACTION = 0, 1, 2
_SIZE_KIND = {
    METRIC_ORDER_QUANTITY: _QUANTITY,
    METRIC_ORDER_NOTIONAL: _NOTIONAL,
    METRIC_ORDER_EQUITY_FRACTION: _EQUITY_FRACTION,
}

ControlRule = tuple[Policy, str, int, str | None, int, float, bool, int]
"""A prepared control policy: the policy, its name, its scope as an index into ``(account_id,
symbol, strategy_id)``, its scope id, its operator's code
(:data:`~risk_worker.domain.readings.OP_CODE`: ``value <op> threshold`` holds), the threshold,
whether its utilization is ``max(0, value) / threshold`` (an upper bound over zero), which of
its control's values it reads (order size: quantity, notional, equity fraction; throttle: the
account's window, the strategy's; open orders: by scope index; collar: the one)."""


def _value_index(policy: Policy) -> int:
    metric, scope = policy.metric, policy.scope
    if metric in _SIZE_KIND:
        return _SIZE_KIND[metric]
    if metric is METRIC_ORDER_RATE:
        return 1 if scope is SCOPE_STRATEGY else 0
    if metric is METRIC_OPEN_ORDERS:
        return _SCOPE_INDEX[scope]
    return 0


def _prepare(policy: Policy) -> ControlRule:
    return (
        policy,
        policy.name,
        _SCOPE_INDEX[policy.scope],
        policy.scope_id,
        OP_CODE[policy.operator],
        policy.threshold,
        policy.operator in UPPER_BOUNDS and policy.threshold > 0.0,
        _value_index(policy),
    )


class ControlRules:
    """The enabled policies on order-level metrics, grouped by control, in (priority, name)
    order (built by :class:`~risk_worker.domain.policy_set.PolicySet`)."""

    __slots__ = ("collar", "collar_by_symbol", "open_orders", "rate", "size", "strategy_rate")

    def __init__(self, policies: Iterable[Policy]) -> None:
        rules = [_prepare(p) for p in policies]
        by_metric: dict[Metric, list[ControlRule]] = {}
        for rule in rules:
            by_metric.setdefault(rule[0].metric, []).append(rule)
        self.rate = tuple(by_metric.get(METRIC_ORDER_RATE, ()))
        self.strategy_rate = any(r[2] == 2 for r in self.rate)
        collar = by_metric.get(METRIC_PRICE_DEVIATION, [])
        self.collar = tuple(collar)
        # a symbol's own band replaces the unscoped collars for that symbol (order kept)
        self.collar_by_symbol: dict[str, tuple[ControlRule, ...]] = {
            sym: tuple(
                r for r in collar if (r[2] == 1 and r[3] == sym) or (r[2] != 1 and r[3] is not None)
            )
            for sym in {r[3] for r in collar if r[2] == 1 and r[3] is not None}
        }
        self.size = tuple(r for r in rules if r[0].metric in _SIZE_KIND)
        self.open_orders = tuple(by_metric.get(METRIC_OPEN_ORDERS, ()))


class OrderRates:
    """Sliding one-second windows of non-dry-run checks (ms timestamps), per account and per
    strategy, trimmed on use; :meth:`prune` forgets idle ones."""

    __slots__ = ("accounts", "strategies")

    def __init__(self) -> None:
        self.accounts: dict[str, deque[int]] = {}
        self.strategies: dict[str, deque[int]] = {}

    @staticmethod
    def hit(windows: dict[str, deque[int]], key: str, now_ms: int) -> int:
        """Count one check of ``key`` at ``now_ms``; returns the checks in ``(now − 1 s, now]``.

        A clock that steps back only keeps timestamps longer (it over-counts, never under).
        """
        window = windows.get(key)
        if window is None:
            window = windows[key] = deque()
        window.append(now_ms)
        start = now_ms - WINDOW_MS
        while window[0] <= start:
            window.popleft()
        return len(window)

    def prune(self, now_ms: int) -> None:
        """Drop the windows whose newest check is older than the window (bounds memory)."""
        start = now_ms - WINDOW_MS
        for windows in (self.accounts, self.strategies):
            idle = [key for key, w in windows.items() if not w or w[-1] <= start]
            for key in idle:
                del windows[key]


class ControlStop:
    """Where the controls stopped a check: a denial (``reason``, ``message``, the violated
    policies) or, with ``reason`` None, an idempotent retry of the live reservation
    ``duplicate_of``."""

    __slots__ = ("duplicate_of", "message", "reason", "violations")

    def __init__(
        self,
        reason: DenyReason | None,
        message: str,
        violations: list[Evaluation] | None = None,
        duplicate_of: PendingOrder | None = None,
    ) -> None:
        self.reason = reason
        self.message = message
        self.violations = violations or []
        self.duplicate_of = duplicate_of


def _assess(
    rules: tuple[ControlRule, ...],
    values: tuple[float, ...],
    keys: tuple[str, str, str | None],
    where: str | None,
    utilization: dict[str, float],
    warnings: list[Evaluation],
) -> list[Evaluation] | None:
    """Evaluate one control's rules that apply to the order (scope as for policies, see
    :mod:`~risk_worker.domain.policies`); record each one's utilization (the highest per
    name), append soft violations to ``warnings``; returns the hard/emergency ones (or None).
    """
    violations: list[Evaluation] | None = None
    for policy, name, scope, scope_id, op, threshold, plain, index in rules:
        if scope_id is None:
            if scope == 2 and keys[2] is None:  # strategy-scoped: orders naming a strategy
                continue
        elif scope_id != keys[scope]:
            continue
        value = values[index]
        used = (value if value > 0.0 else 0.0) / threshold if plain else policy.utilization(value)
        before = utilization.get(name)
        utilization[name] = used if before is None or used > before else before
        # value <op> threshold (readings.holds, inline)
        if op == OP_LTE:
            ok = value <= threshold
        elif op == OP_LT:
            ok = value < threshold
        elif op == OP_GT:
            ok = value > threshold
        else:
            ok = value >= threshold
        if ok:
            continue
        ev = Evaluation(policy, value, where, True)
        if policy.type is POLICY_TYPE_SOFT:
            warnings.append(ev)
        elif violations is None:
            violations = [ev]
        else:
            violations.append(ev)
    return violations


def _same_content(r: PendingOrder, order: Order) -> bool:
    """Whether a retry repeats the reserved order: symbol, side, quantity, price and type."""
    return (
        r.symbol == order.symbol
        and (r.signed_qty > 0.0) == (order.side is SIDE_BUY)
        and r.quantity == order.quantity
        and r.limit_price == order.price
        and r.order_type is order.order_type
    )


def check_controls(
    order: Order,
    account: Account,
    marks: Mapping[str, Mark],
    rules: ControlRules,
    rates: OrderRates | None,
    now_ms: int,
    price: float,
    equity: float,
    utilization: dict[str, float],
    warnings: list[Evaluation],
) -> ControlStop | None:
    """Run the order-level controls on one order (see the module docstring).

    Args:
        order: the validated order (a native class when compiled: its fields are read
            directly, where a Protocol made each read an attribute lookup).
        account: its (known) account; reservations already expired to ``now_ms``.
        marks: symbol → mark.
        rules: the loaded set's control policies.
        rates: the throttle windows; None counts nothing (no throttle).
        now_ms: the worker clock (ms since epoch).
        price: the order's valuation price (quote per base unit): the higher of limit and mark.
        equity: the account's equity before the order (quote).
        utilization: policy name → fraction of its limit used; the controls add theirs.
        warnings: soft violations are appended here.

    Returns:
        None when every control passes; else where it stopped.
    """
    keys = (order.account_id, order.symbol, order.strategy_id)
    live = not order.dry_run
    if live and rates is not None and rules.rate:
        per_account = rates.hit(rates.accounts, order.account_id, now_ms)
        per_strategy = 0
        if rules.strategy_rate and order.strategy_id is not None:
            per_strategy = rates.hit(rates.strategies, order.strategy_id, now_ms)
        rates_now = (float(per_account), float(per_strategy))  # counts, as the float values
        violations = _assess(rules.rate, rates_now, keys, None, utilization, warnings)
        if violations:
            return ControlStop(
                DENY_REASON_RATE_LIMITED,
                f"{violations[0].message} checks in the last second (order throttle)",
                violations,
            )
    if live:
        r = account.pending.get(order.order_id)
        if r is not None:
            if _same_content(r, order):
                return ControlStop(
                    None,
                    f"approved: duplicate of live order {order.order_id} "
                    "(idempotent retry; nothing reserved again)",
                    duplicate_of=r,
                )
            return ControlStop(
                DENY_REASON_DUPLICATE_ORDER_ID,
                f"Duplicate Order Id: order_id {order.order_id} is live with other content "
                "(symbol, side, quantity, price or type differ)",
            )
    limit = order.price
    if limit is not None and rules.collar:
        mark = marks.get(order.symbol)
        if mark is not None:
            m = mark.price
            deviation = (limit - m if order.side is SIDE_BUY else m - limit) / m
            violations = _assess(
                rules.collar_by_symbol.get(order.symbol, rules.collar),
                (deviation if deviation > 0.0 else 0.0,),
                keys,
                order.symbol,
                utilization,
                warnings,
            )
            if violations:
                return ControlStop(
                    DENY_REASON_PRICE_OUT_OF_COLLAR,
                    f"{violations[0].message}: {order.side} limit {limit:g} against mark "
                    f"{m:g} (price collar)",
                    violations,
                )
    if rules.size:
        notional = order.quantity * price
        sizes = (order.quantity, notional, notional / equity if equity > 0.0 else INF)
        violations = _assess(rules.size, sizes, keys, None, utilization, warnings)
        if violations:
            return ControlStop(
                DENY_REASON_ORDER_TOO_LARGE,
                f"{violations[0].message}: quantity {order.quantity:g}, notional {notional:.2f} "
                f"at {price:g}, equity {equity:.2f} (maximum order size)",
                violations,
            )
    if rules.open_orders:
        pending = account.pending
        total, on_symbol, of_strategy = pending.counts(order.symbol, order.strategy_id)
        own = pending.get(order.order_id)  # a dry-run re-check of a live order: not twice
        if own is not None:
            total -= 1
            on_symbol -= own.symbol == order.symbol
            of_strategy -= order.strategy_id is not None and own.strategy_id == order.strategy_id
        counts = (total + 1.0, on_symbol + 1.0, of_strategy + 1.0)
        violations = _assess(rules.open_orders, counts, keys, None, utilization, warnings)
        if violations:
            return ControlStop(
                DENY_REASON_TOO_MANY_OPEN_ORDERS,
                f"{violations[0].message} with this order (open orders)",
                violations,
            )
    return None
