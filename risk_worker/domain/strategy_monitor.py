"""The monitor's evaluation of an account's strategies (issue 13, item 2).

Each monitor pass, after the account's own evaluation, every strategy book of the account gets
its metrics (:mod:`~risk_worker.domain.strategy_metrics`, against the account's equity of the
same pass), observes its peak PnL and day start, and — when strategy-scoped policies are
loaded — is evaluated against them. A strategy's violations alert like the account's
(de-duplicated per (account, policy, strategy)); an emergency violation trips *that strategy of
that account* on its onset (``trading_state.auto.<account>.strategy.<strategy>``, the
configured automatic state), never the account; hard violations do not feed the account's
circuit breaker. An operator's clear of such a trip is respected as for accounts: the strategy
is tripped again only on a new onset, or by a new lease holder's catch-up pass for an onset
after the clear.
"""

from __future__ import annotations

from risk_worker.domain.book import Account
from risk_worker.domain.guards import AlertDeduper
from risk_worker.domain.mark import Mark
from risk_worker.domain.order import level_from_utilization
from risk_worker.domain.policies import Evaluation
from risk_worker.domain.policy_set import PolicySet
from risk_worker.domain.reports import NO_FINDINGS, StrategyFindings, StrategyReport
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.strategy_book import observe_strategy
from risk_worker.domain.strategy_metrics import compute_strategy_metrics
from risk_worker.domain.trading_state import TradingStates
from risk_worker.domain.types import (
    STATE_SEVERITY,
    TradingState,
)
from risk_worker.domain.vocab import (
    POLICY_TYPE_EMERGENCY,
    POLICY_TYPE_SOFT,
    RISK_LEVEL_BREACHED,
    TRADING_STATE_HALTED,
)


def evaluate_strategies(
    account: Account,
    account_equity: float,
    marks: dict[str, Mark],
    policies: PolicySet,
    states: TradingStates,
    deduper: AlertDeduper,
    config: RiskConfig,
    now_ms: int,
    auto_trip_state: TradingState,
    catch_up: bool = False,
) -> StrategyFindings:
    """Evaluate every strategy book of ``account`` (see the module docstring).

    Args:
        account_equity: the account's equity of this pass (quote).
        auto_trip_state: the state an automatic trip sets (REDUCING or HALTED).
        catch_up: this instance has just taken the monitor lease: trip the strategies still
            in emergency breach since before any clear (as for accounts).
    """
    if not account.strategies:
        return NO_FINDINGS
    account_id = account.account_id
    findings = StrategyFindings({}, [], 0, [])
    for strategy_id, book in account.strategies.items():
        report = assess_strategy(
            account, strategy_id, account_equity, marks, policies, states, config, now_ms
        )
        if account.balance_known:
            observe_strategy(book, report.metrics.pnl, account_equity, now_ms, config.trading_day)
        emergency: Evaluation | None = None
        for ev in report.violations:
            p = ev.policy
            if p.type is POLICY_TYPE_EMERGENCY and emergency is None:
                emergency = ev
            if deduper.allow(account_id, f"{p.id}/{strategy_id}", now_ms):
                findings.alerts.append((strategy_id, ev))
            else:
                findings.deduplicated += 1
        onset = emergency is not None and not book.emergency_breached
        book.emergency_breached = emergency is not None
        if onset:
            book.emergency_onset_ms = now_ms
        elif emergency is None:
            book.emergency_onset_ms = 0
        severity = states.strategy_severity(account_id, strategy_id)
        tripped = severity >= STATE_SEVERITY[auto_trip_state]
        cleared = states.strategy_cleared_at(account_id, strategy_id)
        owed = onset or (catch_up and cleared < book.emergency_onset_ms)
        if emergency is not None and owed and not tripped:
            findings.trips.append((strategy_id, emergency.message))
            if STATE_SEVERITY[auto_trip_state] > STATE_SEVERITY[report.trading_state]:
                report.trading_state = auto_trip_state
            report.risk_level = RISK_LEVEL_BREACHED
        findings.reports[strategy_id] = report
    return findings


def assess_strategy(
    account: Account,
    strategy_id: str,
    account_equity: float,
    marks: dict[str, Mark],
    policies: PolicySet,
    states: TradingStates,
    config: RiskConfig,
    now_ms: int,
) -> StrategyReport:
    """One strategy's metrics, utilization, violations, level and state (pure: changes
    nothing; for the monitor, status and ``risk.query.metrics``)."""
    m = compute_strategy_metrics(account, strategy_id, marks, config, now_ms, account_equity)
    utilization: dict[str, float] = {}
    violations: list[Evaluation] = []
    for ev in policies.evaluate_strategy(m) if policies.strategy_scoped else ():
        p = ev.policy
        utilization[p.name] = max(utilization.get(p.name, 0.0), p.utilization(ev.value))
        if ev.violated:
            violations.append(ev)
    state = states.effective(account.account_id, strategy_id).state
    breached = state is TRADING_STATE_HALTED or any(
        v.policy.type is not POLICY_TYPE_SOFT for v in violations
    )
    level = RISK_LEVEL_BREACHED if breached else level_from_utilization(utilization)
    return StrategyReport(m, utilization, violations, level, state)


def assess_strategies(
    account: Account,
    account_equity: float,
    marks: dict[str, Mark],
    policies: PolicySet,
    states: TradingStates,
    config: RiskConfig,
    now_ms: int,
) -> dict[str, StrategyReport]:
    """:func:`assess_strategy` of every strategy book of the account, by strategy id."""
    return {
        sid: assess_strategy(account, sid, account_equity, marks, policies, states, config, now_ms)
        for sid in account.strategies
    }
