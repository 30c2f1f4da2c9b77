"""The monitor's evaluation of one account: metrics, alerts, breaker hits and trips.

Run every monitor interval for each known account (and its strategies:
:mod:`~risk_worker.domain.strategy_monitor`). Soft violations raise warnings, hard ones
critical alerts and a circuit-breaker hit (one per evaluation), emergency ones a trip of the
account on the onset of the breach: an operator who clears an account still in breach is not
overruled a second later (its orders that add risk stay denied by the emergency policy, so it
can only reduce). Alerts of the same (account, policy) are de-duplicated over a window; the
breaker counts every evaluation with a hard violation, de-duplicated or not.

An automatic trip sets the configured state (``RISK_AUTO_TRIP_STATE``: REDUCING by default, so
strictly reducing orders still pass; or HALTED) on the account's automatic key, never on an
operator's key.

Catch-up (``catch_up``): an instance that has just taken the monitor lease saw the onsets and
breaker trips of the previous holder's term as a standby, without tripping. On its first pass as
holder it trips every account still in emergency breach, or whose breaker fired within the
window, that is not already tripped at account scope, unless an operator cleared the account
(an ACTIVE value on its operator or automatic key) at or after that onset or firing: such a
clear is respected as on the holder itself. The comparison is of the writer's clock
(``updated_at``) with this instance's; a skew can only make it trip again (fail closed).
"""

from __future__ import annotations

from risk_worker.domain.account_rules import assess_account_rules
from risk_worker.domain.book import Account, AccountBook
from risk_worker.domain.equity_window import observe_equity
from risk_worker.domain.guards import AlertDeduper, CircuitBreaker
from risk_worker.domain.metrics import compute_metrics
from risk_worker.domain.order import level_from_utilization
from risk_worker.domain.policies import Evaluation
from risk_worker.domain.policy_set import PolicySet
from risk_worker.domain.readings import account_readings
from risk_worker.domain.reports import (
    LEVEL_OF_TYPE,
    AccountReport,
    AlertDraft,
    Assessment,
    Trip,
)
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.strategy_monitor import evaluate_strategies
from risk_worker.domain.trading_state import TradingStates
from risk_worker.domain.types import (
    STATE_SEVERITY,
    TradingState,
)
from risk_worker.domain.var import exposures, historical_var, informational_var
from risk_worker.domain.vocab import (
    POLICY_TYPE_EMERGENCY,
    POLICY_TYPE_HARD,
    POLICY_TYPE_SOFT,
    RISK_LEVEL_BREACHED,
    STATE_SOURCE_CIRCUIT_BREAKER,
    STATE_SOURCE_POLICY,
    TRADING_STATE_HALTED,
    TRADING_STATE_REDUCING,
)


def assess_account(
    account: Account,
    book: AccountBook,
    policies: PolicySet,
    states: TradingStates,
    config: RiskConfig,
    now_ms: int,
) -> Assessment:
    """Metrics, limit utilization and violations of an account (pure: changes nothing).

    The historical VaR (:mod:`risk_worker.domain.var`) is computed here (without a VaR policy
    only once per new sample: :func:`~risk_worker.domain.var.informational_var`); a VaR
    policy whose value is not computable (NaN) is neither held nor violated, and has no
    utilization.
    """
    metrics = compute_metrics(account, book.marks, config, now_ms)
    account_id = account.account_id
    metrics.var = (
        historical_var(
            exposures(account, book.marks),
            book.returns,
            config.var.min_samples,
            config.var.horizon_s,
            account_id,
        )
        if policies.uses_var
        else informational_var(
            account, book.marks, book.returns, config.var.min_samples, config.var.horizon_s
        )
    )
    utilization, violations = assess_account_rules(
        policies.account_rules,
        account_readings(metrics),
        metrics.held_notionals(),
        metrics.equity,
        account_id,
    )
    state = states.effective(account_id).state
    breached = state is TRADING_STATE_HALTED or any(
        v.policy.type is not POLICY_TYPE_SOFT for v in violations
    )
    level = RISK_LEVEL_BREACHED if breached else level_from_utilization(utilization)
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
    auto_trip_state: TradingState = TRADING_STATE_REDUCING,
    catch_up: bool = False,
) -> AccountReport:
    """Assess the account, track its peak, and say what to alert, count and trip.

    Args:
        auto_trip_state: the state an automatic trip sets (REDUCING or HALTED).
        catch_up: this instance has just taken the monitor lease: trip what the previous
            holder may have left untripped (see the module's docstring).
    """
    a = assess_account(account, book, policies, states, config, now_ms)
    observe_equity(account, a.metrics.equity, now_ms, config.trading_day, config.drawdown_window_ms)
    account_id = account.account_id
    alerts: list[AlertDraft] = []
    deduplicated = 0
    hard = False
    emergency: Evaluation | None = None
    for ev in a.violations:
        p = ev.policy
        if p.type is POLICY_TYPE_HARD:
            hard = True
        elif p.type is POLICY_TYPE_EMERGENCY and emergency is None:
            emergency = ev
        if deduper.allow(account_id, p.id, now_ms):
            alerts.append(AlertDraft(LEVEL_OF_TYPE[p.type], account_id, ev))
        else:
            deduplicated += 1
    tripped = states.account_severity(account_id) >= STATE_SEVERITY[auto_trip_state]
    onset = emergency is not None and not account.emergency_breached
    account.emergency_breached = emergency is not None
    if onset:
        account.emergency_onset_ms = now_ms
    elif emergency is None:
        account.emergency_onset_ms = 0
    trip: Trip | None = None
    if emergency is not None and onset and not tripped:
        trip = Trip(account_id, emergency.message, STATE_SOURCE_POLICY, auto_trip_state)
    fired = hard and breaker.record(account_id, now_ms)
    if fired:
        account.breaker_fired_ms = now_ms
    if fired and trip is None and not tripped:
        trip = _breaker_trip(account_id, breaker, auto_trip_state)
    if catch_up and trip is None and not tripped:
        trip = _catch_up_trip(account, emergency, states, breaker, now_ms, auto_trip_state)
    found = evaluate_strategies(
        account,
        a.metrics.equity,
        book.marks,
        policies,
        states,
        deduper,
        config,
        now_ms,
        auto_trip_state,
        catch_up,
    )
    for strategy_id, ev in found.alerts:
        alerts.append(AlertDraft(LEVEL_OF_TYPE[ev.policy.type], account_id, ev, strategy_id))
    strategy_trips = [
        Trip(account_id, reason, STATE_SOURCE_POLICY, auto_trip_state, strategy_id)
        for strategy_id, reason in found.trips
    ]
    state, level = a.trading_state, a.risk_level
    if trip is not None:
        if STATE_SEVERITY[trip.state] > STATE_SEVERITY[state]:
            state = trip.state
        level = RISK_LEVEL_BREACHED
    return AccountReport(
        account_id,
        a.metrics,
        a.utilization,
        level,
        state,
        a.violations,
        alerts,
        trip,
        deduplicated + found.deduplicated,
        found.reports,
        strategy_trips,
    )


def _breaker_trip(account_id: str, breaker: CircuitBreaker, state: TradingState) -> Trip:
    return Trip(
        account_id,
        f"circuit breaker: {breaker.threshold} hard violations within "
        f"{breaker.window_ms // 1000} s",
        STATE_SOURCE_CIRCUIT_BREAKER,
        state,
    )


def _catch_up_trip(
    account: Account,
    emergency: Evaluation | None,
    states: TradingStates,
    breaker: CircuitBreaker,
    now_ms: int,
    state: TradingState,
) -> Trip | None:
    """The trip a new lease holder owes an account still in violation (None: none owed)."""
    account_id = account.account_id
    cleared = states.cleared_at(account_id)
    if emergency is not None and cleared < account.emergency_onset_ms:
        return Trip(account_id, emergency.message, STATE_SOURCE_POLICY, state)
    fired = account.breaker_fired_ms
    if fired and now_ms - fired < breaker.window_ms and cleared < fired:
        return _breaker_trip(account_id, breaker, state)
    return None
