"""Risk policies: limits on metrics, evaluated pre-trade and by the monitor.

A policy HOLDS while ``value <operator> threshold`` is true and is VIOLATED otherwise. HARD
violations deny an order, SOFT ones come back as warnings, EMERGENCY ones deny and make the
monitor halt the account.

Scopes: ``account`` (scope_id an account id, or None for all accounts); ``symbol`` (scope_id a
symbol, or None for every symbol: pre-trade the order's symbol, in the monitor every open one);
``strategy`` (pre-trade only: orders whose ``strategy_id`` equals scope_id, or every order that
names a strategy when scope_id is None).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Iterator

import msgspec

from risk_worker.domain.metrics import AccountMetrics
from risk_worker.domain.types import Metric, Operator, PolicyType, Scope

_COMPARE: dict[Operator, Callable[[float, float], bool]] = {
    Operator.LT: operator.lt,
    Operator.LTE: operator.le,
    Operator.GT: operator.gt,
    Operator.GTE: operator.ge,
}
ORDER_METRICS = frozenset({Metric.ORDER_NOTIONAL, Metric.ORDER_QUANTITY})
UPPER_BOUNDS = frozenset({Operator.LT, Operator.LTE})


class PolicyError(ValueError):
    """A policy definition that cannot be evaluated (raised by :func:`validate_policy`)."""


class Policy(msgspec.Struct, frozen=True):
    """One limit. threshold is in the metric's unit (quote, base units, fraction, or count)."""

    id: str
    name: str
    type: PolicyType
    metric: Metric
    operator: Operator
    threshold: float
    scope: Scope = Scope.ACCOUNT
    scope_id: str | None = None
    enabled: bool = True
    priority: int = 100

    def holds(self, value: float) -> bool:
        """True while ``value <operator> threshold``."""
        return _COMPARE[self.operator](value, self.threshold)

    def utilization(self, value: float) -> float:
        """How close ``value`` is to the limit: 1.0 at the threshold, > 1 beyond it.

        Upper bounds (lt/lte) with threshold > 0: value / threshold. Lower bounds (gt/gte) with
        threshold > 0: threshold / value (∞ when value ≤ 0); with threshold < 0 (e.g. a loss
        limit ``daily_pnl gte -1000``): value / threshold for losses, else 0. A zero or
        non-positive upper threshold cannot be scaled: 1.0 when violated, else 0.
        """
        t = self.threshold
        if self.operator in UPPER_BOUNDS:
            if t > 0.0:
                return max(0.0, value) / t
        elif t > 0.0:
            return t / value if value > 0.0 else math.inf
        elif t < 0.0:
            return value / t if value < 0.0 else 0.0
        return 0.0 if self.holds(value) else 1.0


def validate_policy(policy: Policy) -> Policy:
    """Check what the type system cannot; returns the policy.

    Raises:
        PolicyError: the threshold is NaN or infinite, or scope_id is an empty string.
    """
    if not math.isfinite(policy.threshold):
        raise PolicyError(f"policy {policy.name!r}: threshold must be finite")
    if policy.scope_id is not None and not policy.scope_id:
        raise PolicyError(f"policy {policy.name!r}: scope_id must be null or non-empty")
    return policy


class Evaluation(msgspec.Struct, frozen=True, gc=False):
    """A policy evaluated on one value; ``symbol`` set for symbol-scoped evaluations."""

    policy: Policy
    value: float
    symbol: str | None
    violated: bool

    @property
    def message(self) -> str:
        """Human sentence, e.g. ``Max Account Leverage: leverage 12.5 violates lte 10``."""
        p = self.policy
        where = f"[{self.symbol}]" if self.symbol else ""
        verb = "violates" if self.violated else "holds"
        return f"{p.name}: {p.metric}{where} {self.value:.6g} {verb} {p.operator} {p.threshold:g}"


def metric_value(
    metric: Metric,
    m: AccountMetrics,
    symbol: str | None,
    order_notional: float | None = None,
    order_quantity: float | None = None,
) -> float | None:
    """Value of ``metric`` in its unit; None when it does not apply (order metric, no order)."""
    if metric is Metric.LEVERAGE:
        return m.leverage
    if metric is Metric.MARGIN_RATIO:
        return m.margin_ratio
    if metric is Metric.DRAWDOWN_DAILY:
        return m.drawdown_daily
    if metric is Metric.DRAWDOWN_MAX:
        return m.drawdown_max
    if metric is Metric.DAILY_PNL:
        return m.daily_pnl
    if metric is Metric.GROSS_EXPOSURE:
        return m.gross_exposure
    if metric is Metric.NET_EXPOSURE:
        return m.net_exposure
    if metric is Metric.CONCENTRATION:
        return m.concentration(symbol)
    if metric is Metric.POSITION_NOTIONAL:
        if symbol is None:
            return max(m.position_notional.values(), default=0.0)
        return m.position_notional.get(symbol, 0.0)
    if metric is Metric.OPEN_POSITIONS:
        return float(m.open_positions)
    if metric is Metric.ORDER_NOTIONAL:
        return order_notional
    return order_quantity


class PolicySet:
    """An immutable, prepared set of enabled policies, split by scope for fast look-up.

    Policies are kept in (priority, name) order: lower priority numbers are evaluated and
    reported first.
    """

    __slots__ = ("_account", "_strategy", "_symbol", "policies")

    def __init__(self, policies: Iterable[Policy]) -> None:
        ordered = sorted((validate_policy(p) for p in policies), key=lambda p: (p.priority, p.name))
        self.policies: tuple[Policy, ...] = tuple(ordered)
        enabled = [p for p in ordered if p.enabled]
        self._account = tuple(p for p in enabled if p.scope is Scope.ACCOUNT)
        self._symbol = tuple(p for p in enabled if p.scope is Scope.SYMBOL)
        self._strategy = tuple(p for p in enabled if p.scope is Scope.STRATEGY)

    def __len__(self) -> int:
        return len(self.policies)

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
        for p in self._account:
            if p.scope_id is None or p.scope_id == account_id:
                out.append(_evaluate(p, m, None, order_notional, order_quantity))
        for p in self._symbol:
            if p.scope_id is None or p.scope_id == symbol:
                out.append(_evaluate(p, m, symbol, order_notional, order_quantity))
        if strategy_id is not None:
            for p in self._strategy:
                if p.scope_id is None or p.scope_id == strategy_id:
                    out.append(_evaluate(p, m, None, order_notional, order_quantity))
        return out

    def evaluate_account(self, account_id: str, m: AccountMetrics) -> Iterator[Evaluation]:
        """Evaluate the account- and symbol-scoped policies (no order metrics) for the monitor."""
        for p in self._account:
            if p.metric not in ORDER_METRICS and (p.scope_id is None or p.scope_id == account_id):
                yield _evaluate(p, m, None, None, None)
        for p in self._symbol:
            if p.metric in ORDER_METRICS:
                continue
            symbols = m.position_notional if p.scope_id is None else (p.scope_id,)
            for symbol in symbols:
                yield _evaluate(p, m, symbol, None, None)


def _evaluate(
    p: Policy,
    m: AccountMetrics,
    symbol: str | None,
    order_notional: float | None,
    order_quantity: float | None,
) -> Evaluation:
    value = metric_value(p.metric, m, symbol, order_notional, order_quantity)
    assert value is not None  # order metrics are only evaluated with an order
    return Evaluation(p, value, symbol, not p.holds(value))


def default_policies() -> list[Policy]:
    """The five built-in policies (used until a policy source provides others).

    Ids are uuid5(NAMESPACE_URL, "risk-worker/policy/<name>"), stable across processes.
    """
    return [
        Policy(
            "25df718a-9251-5611-9e4e-5c35848ac433",
            "Max Account Leverage",
            PolicyType.HARD,
            Metric.LEVERAGE,
            Operator.LTE,
            10.0,
            priority=10,
        ),
        Policy(
            "123278a2-420b-5b6d-85e6-dbd4a524138b",
            "Min Margin Ratio",
            PolicyType.HARD,
            Metric.MARGIN_RATIO,
            Operator.GTE,
            1.0,
            priority=20,
        ),
        Policy(
            "127718cc-511c-5eec-9e70-6f562cb86f38",
            "Daily Drawdown Warning",
            PolicyType.SOFT,
            Metric.DRAWDOWN_DAILY,
            Operator.LTE,
            0.10,
            priority=30,
        ),
        Policy(
            "3a2ed216-06b5-5b97-b6df-bd5daea4c3a0",
            "Max Drawdown",
            PolicyType.HARD,
            Metric.DRAWDOWN_MAX,
            Operator.LTE,
            0.20,
            priority=40,
        ),
        Policy(
            "6dfaa332-46f8-5a56-bad9-055975f77b6d",
            "Emergency Drawdown Stop",
            PolicyType.EMERGENCY,
            Metric.DRAWDOWN_MAX,
            Operator.LTE,
            0.25,
            priority=5,
        ),
    ]
