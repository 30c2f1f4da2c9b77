"""Risk policies: limits on metrics, evaluated pre-trade and by the monitor.

A policy HOLDS while ``value <operator> threshold`` is true and is VIOLATED otherwise. HARD
violations deny an order, SOFT ones come back as warnings, EMERGENCY ones deny and make the
monitor halt the account.

Scopes: ``account`` (scope_id an account id, or None for all accounts); ``symbol`` (scope_id a
symbol, or None for every symbol: pre-trade the order's symbol, in the monitor every open one);
``strategy`` (scope_id a strategy id, or None for every strategy): read on the *strategy's*
metrics (:mod:`~risk_worker.domain.strategy_metrics`) — pre-trade for orders naming the
strategy, in the monitor for every strategy book of every account; order-level metrics of a
strategy-scoped policy are the order-level controls' (its orders' rate and open orders).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import msgspec

from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.strategy_metrics import STRATEGY_LOWER_BOUND_READERS, STRATEGY_READERS
from risk_worker.domain.types import Metric, Operator, PolicyType, Scope

COMPARE: dict[Operator, Callable[[float, float], bool]] = {
    Operator.LT: operator.lt,
    Operator.LTE: operator.le,
    Operator.GT: operator.gt,
    Operator.GTE: operator.ge,
}
ORDER_METRICS = frozenset(
    {
        Metric.ORDER_NOTIONAL,
        Metric.ORDER_QUANTITY,
        Metric.ORDER_EQUITY_FRACTION,
        Metric.PRICE_DEVIATION,
        Metric.ORDER_RATE,
        Metric.OPEN_ORDERS,
    }
)
"""Order-level metrics: the order-level controls (:mod:`risk_worker.domain.controls`) check
them before the margin, each with its own deny reason; the monitor never evaluates them."""
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
        return COMPARE[self.operator](value, self.threshold)

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
        PolicyError: the threshold is NaN or infinite; scope_id is an empty string; a
            strategy-scoped policy limits a metric a strategy has no value of (margin ratio,
            the windowed drawdown, VaR: see
            :data:`~risk_worker.domain.strategy_metrics.STRATEGY_READERS`).
    """
    if not math.isfinite(policy.threshold):
        raise PolicyError(f"policy {policy.name!r}: threshold must be finite")
    if policy.scope_id is not None and not policy.scope_id:
        raise PolicyError(f"policy {policy.name!r}: scope_id must be null or non-empty")
    if (
        policy.scope is Scope.STRATEGY
        and policy.metric not in ORDER_METRICS
        and policy.metric not in STRATEGY_READERS
    ):
        allowed = ", ".join(sorted(m.value for m in (*STRATEGY_READERS, *ORDER_METRICS)))
        raise PolicyError(
            f"policy {policy.name!r}: a strategy has no {policy.metric} of its own "
            f"(strategy scope allows {allowed}); scope it to the account"
        )
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


READS_ACCOUNT, READS_SYMBOL, READS_ORDER = 0, 1, 2
"""What a metric reader is called with: the metrics; the metrics and a symbol (None for the
largest position); or the order's ``(notional, quantity)``."""

Reader = tuple[int, Callable[..., float]]
"""How a metric is read: (``READS_ACCOUNT``/``READS_SYMBOL``/``READS_ORDER``, reader)."""


def _getter(name: str) -> Callable[[AccountMetrics], float]:
    """The reader of the AccountMetrics property ``name``: the function behind it in the pure
    core (one call instead of two); in the compiled core, where AccountMetrics is a native
    class and its properties native getters (no Python function behind them), the attribute
    read."""
    prop = vars(AccountMetrics)[name]
    if isinstance(prop, property) and prop.fget is not None:
        return prop.fget
    getter: Callable[[AccountMetrics], float] = operator.attrgetter(name)
    return getter


def _open_positions(m: AccountMetrics) -> float:
    return float(m.open_positions)


def _position_notional(m: AccountMetrics, symbol: str | None) -> float:
    return m.notional(symbol)


def _var_95(m: AccountMetrics) -> float:
    v = None if m.var is None else m.var.var_95
    return math.nan if v is None else v


def _var_99(m: AccountMetrics) -> float:
    v = None if m.var is None else m.var.var_99
    return math.nan if v is None else v


def _es_97_5(m: AccountMetrics) -> float:
    v = None if m.var is None else m.var.es_97_5
    return math.nan if v is None else v


def _var_99_fraction(m: AccountMetrics) -> float:
    v = None if m.var is None else m.var.var_99_fraction(m.equity)
    return math.nan if v is None else v


VAR_METRICS = frozenset({Metric.VAR_95, Metric.VAR_99, Metric.ES_97_5, Metric.VAR_99_FRACTION})
"""Historical VaR metrics (:mod:`risk_worker.domain.var`). Their readers give NaN when the
value is not computable (too little history, or not computed): the check and the monitor
treat NaN as unknown, never as a value (see :mod:`risk_worker.domain.decision`)."""

READERS: dict[Metric, Reader] = {
    Metric.LEVERAGE: (READS_ACCOUNT, _getter("leverage")),
    Metric.MARGIN_RATIO: (READS_ACCOUNT, _getter("margin_ratio")),
    Metric.DRAWDOWN_DAILY: (READS_ACCOUNT, _getter("drawdown_daily")),
    Metric.DRAWDOWN_MAX: (READS_ACCOUNT, _getter("drawdown_max")),
    Metric.DRAWDOWN_WINDOW: (READS_ACCOUNT, _getter("drawdown_window")),
    Metric.DAILY_PNL: (READS_ACCOUNT, _getter("daily_pnl")),
    Metric.GROSS_EXPOSURE: (READS_ACCOUNT, operator.attrgetter("gross_exposure")),
    Metric.NET_EXPOSURE: (READS_ACCOUNT, operator.attrgetter("net_exposure")),
    Metric.OPEN_POSITIONS: (READS_ACCOUNT, _open_positions),
    Metric.CONCENTRATION: (READS_SYMBOL, AccountMetrics.concentration),
    Metric.POSITION_NOTIONAL: (READS_SYMBOL, _position_notional),
    Metric.ORDER_NOTIONAL: (READS_ORDER, operator.itemgetter(0)),
    Metric.ORDER_QUANTITY: (READS_ORDER, operator.itemgetter(1)),
    Metric.VAR_95: (READS_ACCOUNT, _var_95),
    Metric.VAR_99: (READS_ACCOUNT, _var_99),
    Metric.ES_97_5: (READS_ACCOUNT, _es_97_5),
    Metric.VAR_99_FRACTION: (READS_ACCOUNT, _var_99_fraction),
}
"""Every metric's reader, resolved once per policy when a policy set is prepared.

Units as in :class:`~risk_worker.domain.metrics.AccountMetrics`; a symbol-dependent metric
(concentration, position notional) reads ``symbol``, or the largest position when it is None.
"""

LOWER_BOUND_READERS: dict[Metric, Reader] = {
    Metric.NET_EXPOSURE: (READS_ACCOUNT, operator.attrgetter("net_exposure_low")),
}
"""Readers of a lower bound (gt/gte) where the worst case is another value than an upper
bound's: net exposure reads its low case (every pending SELL fills), upper bounds its high
case (every pending BUY fills)."""


def reader_of(metric: Metric, op: Operator) -> Reader:
    """How a policy on ``metric`` with operator ``op`` reads its value: the worst case for it."""
    if op not in UPPER_BOUNDS:
        lower = LOWER_BOUND_READERS.get(metric)
        if lower is not None:
            return lower
    return READERS[metric]


def strategy_reader_of(metric: Metric, op: Operator) -> Reader:
    """How a strategy-scoped policy reads its metric on
    :class:`~risk_worker.domain.strategy_values.StrategyMetrics` (worst case as
    :func:`reader_of`); KeyError for a metric a strategy has no value of."""
    if op not in UPPER_BOUNDS:
        lower = STRATEGY_LOWER_BOUND_READERS.get(metric)
        if lower is not None:
            return lower
    return STRATEGY_READERS[metric]


def metric_value(
    metric: Metric,
    m: AccountMetrics,
    symbol: str | None,
    order_notional: float | None = None,
    order_quantity: float | None = None,
    op: Operator = Operator.LTE,
) -> float | None:
    """Value of ``metric`` in its unit; None when it does not apply (order metric, no order).

    ``op`` is the policy's operator: a lower bound reads its worst case (see :func:`reader_of`).
    """
    reads, read = reader_of(metric, op)
    if reads == READS_ACCOUNT:
        return read(m)
    if reads == READS_SYMBOL:
        return read(m, symbol)
    return read((order_notional, order_quantity))


def default_policies() -> list[Policy]:
    """The nine built-in policies (used until a policy source provides others; a source
    replaces them all).

    The last three are order-level controls (issue 12; ESMA RTS 6 art. 15, SEC 15c3-5
    (c)(1)(ii), CME price banding and messaging limits): a 5 % price collar, 50 checks per
    second per account, and an order notional of at most 10 × the account's equity. The
    rapid-drawdown warning (issue 13; trade2026's breaker configuration, 5 % in 300 s) warns
    when equity falls 5 % below its highest of the last ``RISK_DRAWDOWN_WINDOW`` seconds.

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
        Policy(
            "0514b318-4da8-554a-a4da-2807742b36be",
            "Price Collar",
            PolicyType.HARD,
            Metric.PRICE_DEVIATION,
            Operator.LTE,
            0.05,
            priority=50,
        ),
        Policy(
            "7a04ed70-afea-51e7-8bbc-c0f8f7fba674",
            "Max Order Rate",
            PolicyType.HARD,
            Metric.ORDER_RATE,
            Operator.LTE,
            50.0,
            priority=60,
        ),
        Policy(
            "4257993b-730d-5149-a090-07ff999563d3",
            "Max Order Size",
            PolicyType.HARD,
            Metric.ORDER_EQUITY_FRACTION,
            Operator.LTE,
            10.0,
            priority=70,
        ),
        Policy(
            "8e0dc537-4ee0-59d6-b0bf-c43b6b3a7310",
            "Rapid Drawdown Warning",
            PolicyType.SOFT,
            Metric.DRAWDOWN_WINDOW,
            Operator.LTE,
            0.05,
            priority=35,
        ),
    ]
