"""Outbound wire messages: check replies, ``risk.metrics``, ``risk.alerts.*``.

Ratios that have no finite value (margin ratio with no margin used, leverage with equity ≤ 0)
are ``null`` on the wire, never ``Infinity``. Money in quote currency, ratios as fractions,
timestamps in ms since the Unix epoch.
"""

from __future__ import annotations

import math

import msgspec

from risk_worker.domain.decision import Decision
from risk_worker.domain.metrics import AccountMetrics
from risk_worker.domain.monitor import AlertDraft
from risk_worker.domain.policies import Evaluation
from risk_worker.domain.types import RiskLevel, TradingState


def finite(x: float) -> float | None:
    """``x`` when finite, else None (JSON null)."""
    return x if math.isfinite(x) else None


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
    position_concentration: dict[str, float | None]
    limit_utilization: dict[str, float | None]
    open_positions: int
    pending_orders: int
    risk_level: RiskLevel
    trading_state: TradingState
    stale_marks: bool
    worker_id: str = ""


class CheckReplyMsg(msgspec.Struct, frozen=True, gc=False):
    """Reply to ``risk.check.order``; ``rejection_reason`` null when approved."""

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


class AlertMsg(msgspec.Struct, frozen=True, gc=False):
    """A policy alert on ``risk.alerts.<level>`` (``type`` tells it from state changes)."""

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


def metrics_msg(
    account_id: str,
    timestamp: int,
    m: AccountMetrics,
    utilization: dict[str, float],
    risk_level: RiskLevel,
    trading_state: TradingState,
    worker_id: str = "",
) -> RiskMetricsMsg:
    """Build a RiskMetrics message from the core's metrics."""
    return RiskMetricsMsg(
        account_id=account_id,
        timestamp=timestamp,
        equity=m.equity,
        balance=m.balance,
        unrealized_pnl=m.unrealized_pnl,
        daily_pnl=m.daily_pnl,
        margin_used=m.margin_used,
        available_margin=m.available_margin,
        margin_ratio=finite(m.margin_ratio),
        leverage=finite(m.leverage),
        gross_exposure=m.gross_exposure,
        net_exposure=m.net_exposure,
        drawdown_daily=m.drawdown_daily,
        drawdown_max=m.drawdown_max,
        peak_equity=m.peak_equity,
        day_start_equity=m.day_start_equity,
        position_concentration={s: finite(c) for s, c in m.concentrations().items()},
        limit_utilization={n: finite(u) for n, u in utilization.items()},
        open_positions=m.open_positions,
        pending_orders=m.pending_orders,
        risk_level=risk_level,
        trading_state=trading_state,
        stale_marks=m.stale_marks,
        worker_id=worker_id,
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
) -> CheckReplyMsg:
    """Build the reply to a check from its decision."""
    metrics = None
    if decision.metrics is not None and account_id is not None:
        metrics = metrics_msg(
            account_id,
            now_ms,
            decision.metrics,
            decision.utilization,
            decision.risk_level,
            decision.trading_state,
            worker_id,
        )
    return CheckReplyMsg(
        order_id=order_id,
        account_id=account_id,
        approved=decision.approved,
        rejection_reason=None if decision.reason is None else decision.reason.value,
        reason=decision.message,
        risk_level=decision.risk_level,
        violations=[violation_msg(v) for v in decision.violations],
        warnings=[violation_msg(v) for v in decision.warnings],
        post_trade_metrics=metrics,
        processing_time_us=processing_time_us,
        worker_id=worker_id,
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
    )
