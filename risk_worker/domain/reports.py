"""What the monitor's evaluations produce: reports, assessments, alerts and trips of accounts
(:mod:`~risk_worker.domain.monitor`) and of their strategies
(:mod:`~risk_worker.domain.strategy_monitor`).

msgspec Structs, so this module stays interpreted in the compiled decision core
(:mod:`risk_worker._core`): a compiled module would lose the field types msgspec reads from a
Struct's annotations.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from risk_worker.domain.policies import Evaluation
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.strategy_values import StrategyMetrics
from risk_worker.domain.types import PolicyType, RiskLevel, StateSource, TradingState


class StrategyReport(msgspec.Struct, gc=False):
    """One strategy's evaluation: metrics, limit utilization, violations, level and the
    effective trading state of its orders (global, account, strategy, automatic)."""

    metrics: StrategyMetrics
    utilization: dict[str, float]
    violations: list[Evaluation]
    risk_level: RiskLevel
    trading_state: TradingState


class StrategyFindings(msgspec.Struct, gc=False):
    """What the strategies of one account produced in one pass: reports by strategy id,
    violations to alert as (strategy id, evaluation), those de-duplicated (count), and trips as
    (strategy id, reason) for the automatic state."""

    reports: dict[str, StrategyReport]
    alerts: list[tuple[str, Evaluation]]
    deduplicated: int
    trips: list[tuple[str, str]]


NO_FINDINGS = StrategyFindings({}, [], 0, [])
"""An account without strategy books (shared, never changed)."""


class AlertLevel(StrEnum):
    """Alert severity; also the last token of the ``risk.alerts.<level>`` subject."""

    WARNING = "warning"
    CRITICAL = "critical"
    EMERGENCY = "emergency"


LEVEL_OF_TYPE = {
    PolicyType.SOFT: AlertLevel.WARNING,
    PolicyType.HARD: AlertLevel.CRITICAL,
    PolicyType.EMERGENCY: AlertLevel.EMERGENCY,
}


class AlertDraft(msgspec.Struct, frozen=True, gc=False):
    """An alert to publish (the adapter gives it an id); ``strategy_id`` set for a violation
    of one of the account's strategies."""

    level: AlertLevel
    account_id: str
    evaluation: Evaluation
    strategy_id: str | None = None


class Trip(msgspec.Struct, frozen=True, gc=False):
    """An automatic trip to ``state`` of one account, or with ``strategy_id`` of one strategy
    of the account (the worker never clears)."""

    account_id: str
    reason: str
    source: StateSource
    state: TradingState = TradingState.HALTED
    strategy_id: str | None = None


class AccountReport(msgspec.Struct, gc=False):
    """What one monitor evaluation of an account produced."""

    account_id: str
    metrics: AccountMetrics
    utilization: dict[str, float]
    risk_level: RiskLevel
    trading_state: TradingState
    violations: list[Evaluation]
    alerts: list[AlertDraft]
    trip: Trip | None
    deduplicated: int = 0
    """Violations not alerted because the same (account, policy) alert went out recently."""
    strategies: dict[str, StrategyReport] = msgspec.field(default_factory=dict)
    """The account's strategies' evaluations, by strategy id
    (:mod:`~risk_worker.domain.strategy_monitor`)."""
    strategy_trips: list[Trip] = msgspec.field(default_factory=list)
    """Automatic trips of the account's strategies (each with ``strategy_id``)."""


class Assessment(msgspec.Struct, gc=False):
    """An account's risk at one moment, without side effects (no breaker, no de-duplication).

    ``risk_level`` is BREACHED when a hard or emergency policy is violated or the account is
    HALTED, otherwise by the highest limit utilization.
    """

    metrics: AccountMetrics
    utilization: dict[str, float]
    violations: list[Evaluation]
    risk_level: RiskLevel
    trading_state: TradingState
    strategies: dict[str, StrategyReport] = msgspec.field(default_factory=dict)
    """The account's strategies (:meth:`~risk_worker.domain.engine.RiskEngine.assess` fills
    it; the monitor's evaluation has its own)."""
