"""The monitor's evaluation of one account: metrics, alerts, breaker hits and trips.

Run every monitor interval for each known account. Soft violations raise warnings, hard ones
critical alerts and a circuit-breaker hit (one per evaluation), emergency ones a trip of the
account to HALTED on the onset of the breach: an operator who clears an account still in breach
is not overruled a second later (its orders that add risk stay denied by the emergency policy,
so it can only reduce). Alerts of the same (account, policy) are de-duplicated over a window; the
breaker counts every evaluation with a hard violation, de-duplicated or not.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from risk_worker.domain.book import Account, AccountBook
from risk_worker.domain.decision import level_from_utilization
from risk_worker.domain.guards import AlertDeduper, CircuitBreaker
from risk_worker.domain.metrics import AccountMetrics, RiskConfig, compute_metrics, observe_equity
from risk_worker.domain.policies import Evaluation
from risk_worker.domain.policy_set import PolicySet
from risk_worker.domain.trading_state import TradingStates
from risk_worker.domain.types import PolicyType, RiskLevel, StateSource, TradingState


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
    """An alert to publish (the adapter gives it an id)."""

    level: AlertLevel
    account_id: str
    evaluation: Evaluation


class Trip(msgspec.Struct, frozen=True, gc=False):
    """An automatic trip of one account to HALTED (the worker never clears)."""

    account_id: str
    reason: str
    source: StateSource


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


def assess_account(
    account: Account,
    book: AccountBook,
    policies: PolicySet,
    states: TradingStates,
    config: RiskConfig,
    now_ms: int,
) -> Assessment:
    """Metrics, limit utilization and violations of an account (pure: changes nothing)."""
    metrics = compute_metrics(account, book.marks, config, now_ms)
    utilization: dict[str, float] = {}
    violations: list[Evaluation] = []
    for ev in policies.evaluate_account(account.account_id, metrics):
        p = ev.policy
        utilization[p.name] = max(utilization.get(p.name, 0.0), p.utilization(ev.value))
        if ev.violated:
            violations.append(ev)
    state = states.effective(account.account_id).state
    breached = state is TradingState.HALTED or any(
        v.policy.type is not PolicyType.SOFT for v in violations
    )
    level = RiskLevel.BREACHED if breached else level_from_utilization(utilization)
    return Assessment(metrics, utilization, violations, level, state)


def evaluate_account(
    account: Account,
    book: AccountBook,
    policies: PolicySet,
    states: TradingStates,
    breaker: CircuitBreaker,
    deduper: AlertDeduper,
    config: RiskConfig,
    now_ms: int,
) -> AccountReport:
    """Assess the account, track its peak, and say what to alert, count and trip."""
    a = assess_account(account, book, policies, states, config, now_ms)
    observe_equity(account, a.metrics.equity, now_ms, config.trading_day)
    account_id = account.account_id
    alerts: list[AlertDraft] = []
    deduplicated = 0
    hard = False
    emergency: Evaluation | None = None
    for ev in a.violations:
        p = ev.policy
        if p.type is PolicyType.HARD:
            hard = True
        elif p.type is PolicyType.EMERGENCY and emergency is None:
            emergency = ev
        if deduper.allow(account_id, p.id, now_ms):
            alerts.append(AlertDraft(LEVEL_OF_TYPE[p.type], account_id, ev))
        else:
            deduplicated += 1
    already_halted = _account_halted(states, account_id)
    onset = emergency is not None and not account.emergency_breached
    account.emergency_breached = emergency is not None
    trip: Trip | None = None
    if emergency is not None and onset and not already_halted:
        trip = Trip(account_id, emergency.message, StateSource.POLICY)
    if hard and breaker.record(account_id, now_ms) and trip is None and not already_halted:
        trip = Trip(
            account_id,
            f"circuit breaker: {breaker.threshold} hard violations within "
            f"{breaker.window_ms // 1000} s",
            StateSource.CIRCUIT_BREAKER,
        )
    state, level = a.trading_state, a.risk_level
    if trip is not None:
        state, level = TradingState.HALTED, RiskLevel.BREACHED
    return AccountReport(
        account_id,
        a.metrics,
        a.utilization,
        level,
        state,
        a.violations,
        alerts,
        trip,
        deduplicated,
    )


def _account_halted(states: TradingStates, account_id: str) -> bool:
    value = states.account_value(account_id)
    return value is not None and value.state is TradingState.HALTED
