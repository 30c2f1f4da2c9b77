"""Outbound wire messages: check replies, ``risk.metrics``, ``risk.alerts.*``,
``risk.commands.cancel_all``.

Ratios that have no finite value (margin ratio with no margin used, leverage with equity ≤ 0)
are ``null`` on the wire, never ``Infinity``. Money in quote currency, ratios as fractions,
timestamps in ms since the Unix epoch.
"""

from __future__ import annotations

import msgspec

from risk_worker.domain.order import Decision
from risk_worker.domain.policies import Evaluation
from risk_worker.domain.reports import AlertDraft
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.trading_state import StateValue, parse_state_key
from risk_worker.domain.types import RiskLevel, TradingState
from risk_worker.wire.numbers import finite, finite_values
from risk_worker.wire.strategies import StrategyMetricsMsg


class ViolationMsg(msgspec.Struct, frozen=True, gc=False):
    """A violated (or warned) policy in a check reply; ``value`` null when infinite."""

    policy_id: str
    policy_name: str
    policy_type: str
    metric: str
    operator: str
    threshold: float
    value: float | None
    message: str
    symbol: str | None = None


class RiskMetricsMsg(msgspec.Struct, frozen=True, gc=False):
    """``risk.metrics`` and ``post_trade_metrics``: one account's risk at one moment."""

    account_id: str
    timestamp: int
    equity: float
    balance: float
    unrealized_pnl: float
    daily_pnl: float
    margin_used: float
    available_margin: float
    margin_ratio: float | None
    leverage: float | None
    gross_exposure: float
    net_exposure: float
    drawdown_daily: float
    drawdown_max: float
    peak_equity: float
    day_start_equity: float
    drawdown_window: float
    window_peak_equity: float
    position_concentration: dict[str, float | None]
    limit_utilization: dict[str, float | None]
    open_positions: int
    pending_orders: int
    risk_level: RiskLevel
    trading_state: TradingState
    stale_marks: bool
    worker_id: str = ""
    var_95: float | None = None
    var_99: float | None = None
    es_97_5: float | None = None
    var_99_fraction: float | None = None
    strategies: dict[str, StrategyMetricsMsg] | None = None
    """The account's strategies by strategy id (``risk.metrics``; null without strategy books
    and in check replies)."""


class CheckReplyMsg(msgspec.Struct, frozen=True, gc=False):
    """Reply to ``risk.check.order``; ``rejection_reason`` null when approved; ``duplicate``
    true for an idempotent retry of a live order (approved again, nothing reserved again);
    ``post_trade_metrics`` null on an approval unless the request asked ``detail`` ``full``."""

    order_id: str | None
    account_id: str | None
    approved: bool
    rejection_reason: str | None
    reason: str
    risk_level: RiskLevel
    violations: list[ViolationMsg]
    warnings: list[ViolationMsg]
    post_trade_metrics: RiskMetricsMsg | None
    processing_time_us: int
    worker_id: str
    duplicate: bool = False


class AlertMsg(msgspec.Struct, frozen=True, gc=False):
    """An alert on ``risk.alerts.<level>`` (``type`` tells it from state changes).

    ``type`` ``policy_violation``: a policy violated at the monitor's evaluation.
    ``suspect_tick`` (on ``risk.alerts.warning``): a tick of ``symbol`` jumped more than
    ``RISK_TICK_MAX_JUMP`` from its fresh mark and is held until confirmed; ``mark_price`` is
    the mark in force, ``tick_price`` the suspect price (quote per base unit), ``metric_value``
    the jump |tick − mark| / mark and ``threshold_value`` the allowed jump (fractions); the
    account and policy fields are empty strings.
    """

    alert_id: str
    level: str
    account_id: str
    policy_id: str
    policy_name: str
    policy_type: str
    metric: str
    metric_value: float | None
    threshold_value: float
    message: str
    timestamp: int
    symbol: str | None = None
    type: str = "policy_violation"
    mark_price: float | None = None
    tick_price: float | None = None
    strategy_id: str | None = None
    """The strategy of the account whose policy is violated (a strategy-scoped policy)."""


class StateChangeMsg(msgspec.Struct, frozen=True, gc=False):
    """A trading-state transition on ``risk.alerts.emergency``."""

    level: str
    type: str
    scope: str
    account_id: str | None
    state: TradingState
    reason: str
    triggered_by: str
    timestamp: int
    source: str = "operator"
    strategy_id: str | None = None
    symbol: str | None = None


CANCEL_ALL_SUBJECT = "risk.commands.cancel_all"


class CancelAllMsg(msgspec.Struct, frozen=True, gc=False):
    """``risk.commands.cancel_all``: a scope went HALTED; the OMS cancels its working orders.

    Published once per KV revision that sets HALTED, by the monitor-lease holder (subjects.md
    §3.14). ``scope`` is ``global``, ``account``, ``strategy`` or ``symbol``; the id fields
    not of that scope are null. ``revision`` is the KV revision of the trading-state key,
    ``timestamp`` the time of the write (ms since epoch).
    """

    scope: str
    account_id: str | None
    strategy_id: str | None
    symbol: str | None
    state: TradingState
    reason: str
    triggered_by: str
    revision: int
    timestamp: int


def cancel_all_msg(
    key: str, value: StateValue | None, revision: int, now_ms: int
) -> CancelAllMsg | None:
    """The cancel instruction of a trading-state entry: None unless it sets HALTED.

    Args:
        key: the trading-state key (``trading_state.*``).
        value: its value (None for ACTIVE, deleted or purged).
        revision: its KV revision.
        now_ms: the timestamp when the value carries none (ms since epoch).
    """
    k = parse_state_key(key)
    if k is None or value is None or value.state is not TradingState.HALTED:
        return None
    return CancelAllMsg(
        scope=k.scope,
        account_id=k.account_id,
        strategy_id=k.strategy_id,
        symbol=k.symbol,
        state=value.state,
        reason=value.reason,
        triggered_by=value.updated_by,
        revision=revision,
        timestamp=value.updated_at or now_ms,
    )


def metrics_msg(
    account_id: str,
    timestamp: int,
    m: AccountMetrics,
    utilization: dict[str, float],
    risk_level: RiskLevel,
    trading_state: TradingState,
    worker_id: str = "",
    strategies: dict[str, StrategyMetricsMsg] | None = None,
) -> RiskMetricsMsg:
    """Build a RiskMetrics message from the core's metrics (it shares ``utilization``).

    The VaR fields are null when the VaR was not computed or is not computable.
    """
    var = m.var
    if var is None:
        var_95 = var_99 = es_97_5 = fraction = None
    else:
        var_95, var_99, es_97_5 = var.var_95, var.var_99, var.es_97_5
        fraction = var.var_99_fraction(m.equity)
        fraction = None if fraction is None else finite(fraction)
    return RiskMetricsMsg(
        account_id,
        timestamp,
        m.equity,
        m.balance,
        m.unrealized_pnl,
        m.daily_pnl,
        m.margin_used,
        m.available_margin,
        finite(m.margin_ratio),
        finite(m.leverage),
        m.gross_exposure,
        m.net_exposure_extreme,
        m.drawdown_daily,
        m.drawdown_max,
        m.peak_equity,
        m.day_start_equity,
        m.drawdown_window,
        m.window_peak_equity,
        finite_values(m.concentrations()),
        finite_values(utilization),
        m.open_positions,
        m.pending_orders,
        risk_level,
        trading_state,
        m.stale_marks,
        worker_id,
        var_95,
        var_99,
        es_97_5,
        fraction,
        strategies,
    )


def violation_msg(ev: Evaluation) -> ViolationMsg:
    """Build a violation entry of a reply."""
    p = ev.policy
    return ViolationMsg(
        p.id,
        p.name,
        p.type,
        p.metric,
        p.operator,
        p.threshold,
        finite(ev.value),
        ev.message,
        ev.symbol,
    )


def reply_msg(
    order_id: str | None,
    account_id: str | None,
    decision: Decision,
    now_ms: int,
    processing_time_us: int,
    worker_id: str,
    full: bool = False,
) -> CheckReplyMsg:
    """Build the reply to a check from its decision.

    An approval is compact unless ``full`` (the request asked ``detail`` ``full``):
    ``post_trade_metrics`` null, its building and encoding skipped. A denial carries its
    post-trade metrics (a ``policy_violation``'s) whatever was asked (subjects.md §5.2).
    """
    metrics = None
    if decision.metrics is not None and account_id is not None and (full or not decision.approved):
        metrics = metrics_msg(
            account_id,
            now_ms,
            decision.metrics,
            decision.utilization,
            decision.risk_level,
            decision.trading_state,
            worker_id,
        )
    reason = decision.reason
    violations, warnings = decision.violations, decision.warnings
    return CheckReplyMsg(
        order_id,
        account_id,
        decision.approved,
        None if reason is None else reason.value,
        decision.message,
        decision.risk_level,
        [violation_msg(v) for v in violations] if violations else [],
        [violation_msg(v) for v in warnings] if warnings else [],
        metrics,
        processing_time_us,
        worker_id,
        decision.duplicate,
    )


def alert_msg(draft: AlertDraft, alert_id: str, now_ms: int) -> AlertMsg:
    """Build a policy alert from the monitor's draft."""
    ev = draft.evaluation
    p = ev.policy
    return AlertMsg(
        alert_id,
        draft.level.value,
        draft.account_id,
        p.id,
        p.name,
        p.type.value,
        p.metric.value,
        finite(ev.value),
        p.threshold,
        ev.message,
        now_ms,
        ev.symbol,
        strategy_id=draft.strategy_id,
    )


def suspect_tick_alert(
    symbol: str, mark_price: float, tick_price: float, max_jump: float, alert_id: str, now_ms: int
) -> AlertMsg:
    """The ``suspect_tick`` warning of a tick held by the mark table (see :class:`AlertMsg`).

    Args:
        symbol: the tick's symbol.
        mark_price / tick_price: the mark in force and the held tick (quote per base unit).
        max_jump: ``RISK_TICK_MAX_JUMP`` (fraction).
        alert_id: a random id; now_ms: the worker clock (ms since epoch).
    """
    jump = abs(tick_price - mark_price) / mark_price
    return AlertMsg(
        alert_id,
        "warning",
        "",
        "",
        "",
        "",
        "tick_jump",
        finite(jump),
        max_jump,
        f"suspect tick of {symbol}: {tick_price:g} is {jump:.1%} from the mark {mark_price:g} "
        f"(> {max_jump:.1%}); held until confirmed",
        now_ms,
        symbol,
        "suspect_tick",
        mark_price,
        tick_price,
    )
