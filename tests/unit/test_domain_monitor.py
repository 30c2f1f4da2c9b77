"""Monitor: circuit breaker window, alert de-duplication, emergency trips, engine wiring."""

from __future__ import annotations

import pytest

from risk_worker.domain.book_events import PnlSnapshot, PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.guards import AlertDeduper, CircuitBreaker
from risk_worker.domain.order import Order
from risk_worker.domain.policies import default_policies
from risk_worker.domain.reports import AlertLevel
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.trading_state import GLOBAL_KEY, StateValue, account_key, auto_key
from risk_worker.domain.types import (
    DenyReason,
    OrderType,
    RiskLevel,
    Side,
    StateSource,
    TradingState,
)

ACCT = "a1"
BTC = "BTCUSDT"
T0 = 1_700_000_000_000
SECOND = 1_000


# CircuitBreaker


@pytest.mark.parametrize(
    ("offsets_s", "expected_trips"),
    [
        ([0, 10, 20, 30, 40], [False, False, False, False, True]),
        ([0, 15, 30, 45, 59.999], [False, False, False, False, True]),
        ([0, 0, 0, 0], [False] * 4),  # below threshold
        ([0, 20, 40, 60.001, 80, 100, 120], [False] * 7),  # spread beyond the window
        # the first hit has left the window by the 5th; the 6th makes 5 within 60 s
        ([0, 50, 55, 60, 65, 70], [False, False, False, False, False, True]),
    ],
)
def test_breaker_when_hits_recorded_then_trips_on_threshold_within_window(
    offsets_s, expected_trips
):
    breaker = CircuitBreaker(threshold=5, window_ms=60_000)
    trips = [breaker.record(ACCT, T0 + int(s * SECOND)) for s in offsets_s]
    assert trips == expected_trips


def test_breaker_when_tripped_then_hits_cleared():
    breaker = CircuitBreaker(threshold=2, window_ms=60_000)
    assert breaker.record(ACCT, T0) is False
    assert breaker.record(ACCT, T0 + 1) is True
    assert breaker.count(ACCT, T0 + 2) == 0
    assert breaker.record(ACCT, T0 + 3) is False


def test_breaker_when_hits_on_other_accounts_then_counted_separately():
    breaker = CircuitBreaker(threshold=3, window_ms=60_000)
    for i, account in enumerate(["a1", "a2", "a1", "a2"]):
        assert breaker.record(account, T0 + i) is False
    assert breaker.count("a1", T0 + 10) == 2
    assert breaker.record("a1", T0 + 11) is True


@pytest.mark.parametrize(("threshold", "window_ms"), [(0, 60_000), (5, 0), (5, -1)])
def test_breaker_when_invalid_parameters_then_value_error(threshold, window_ms):
    with pytest.raises(ValueError, match="breaker"):
        CircuitBreaker(threshold, window_ms)


# AlertDeduper


@pytest.mark.parametrize(
    ("second", "allowed"),
    [
        ((ACCT, "p1", T0 + 1), False),
        ((ACCT, "p1", T0 + 299_999), False),
        ((ACCT, "p1", T0 + 300_000), True),
        ((ACCT, "p2", T0 + 1), True),  # other policy
        ("a2", True),  # other account, same policy
    ],
)
def test_deduper_when_same_pair_within_window_then_suppressed(second, allowed):
    deduper = AlertDeduper(window_ms=300_000)
    assert deduper.allow(ACCT, "p1", T0) is True
    args = ("a2", "p1", T0 + 1) if second == "a2" else second
    assert deduper.allow(*args) is allowed


def test_deduper_when_suppressed_then_window_not_extended():
    deduper = AlertDeduper(window_ms=300_000)
    deduper.allow(ACCT, "p1", T0)
    assert deduper.allow(ACCT, "p1", T0 + 200_000) is False
    assert deduper.allow(ACCT, "p1", T0 + 300_000) is True


def test_deduper_when_pruned_then_pairs_inside_window_kept():
    deduper = AlertDeduper(window_ms=300_000)
    deduper.allow(ACCT, "p1", T0)
    deduper.allow(ACCT, "p2", T0 + 100_000)
    deduper.prune(T0 + 300_000)
    assert deduper.allow(ACCT, "p2", T0 + 300_001) is False
    assert deduper.allow(ACCT, "p1", T0 + 300_001) is True


# engine.monitor and evaluate_account


def make_engine(
    balance: float = 1_000.0,
    btc: float = 0.0,
    auto_trip_state: TradingState = TradingState.HALTED,
) -> RiskEngine:
    engine = RiskEngine(RiskConfig(mark_max_age_ms=10**12), auto_trip_state=auto_trip_state)
    engine.load_policies(default_policies())
    engine.apply_pnl(PnlSnapshot(ACCT, balance, None, None, 1))
    engine.set_mark(BTC, 1_000.0, T0, T0)
    if btc:
        engine.apply_position(PositionSnapshot(ACCT, BTC, btc, 1_000.0, 1))
    return engine


def over_levered_engine() -> RiskEngine:
    # 12 BTC @ 1000 on 1000 equity: leverage 12 > 10 and margin ratio 0.83 < 1 (two hard)
    return make_engine(balance=1_000.0, btc=12.0)


def buy_order(price: float = 1_000.0) -> Order:
    return Order("o1", ACCT, BTC, Side.BUY, 0.001, price, OrderType.LIMIT)


def test_monitor_when_five_hard_evaluations_within_window_then_breaker_trips():
    engine = over_levered_engine()
    reports = [engine.monitor(T0 + i * 10 * SECOND)[0] for i in range(5)]
    assert [r.trip is not None for r in reports] == [False, False, False, False, True]
    trip = reports[-1].trip
    assert trip is not None
    assert trip.source is StateSource.CIRCUIT_BREAKER
    assert reports[-1].trading_state is TradingState.HALTED
    assert all(r.risk_level is RiskLevel.BREACHED for r in reports)


def test_monitor_when_hard_alerts_deduplicated_then_each_evaluation_still_counts_once():
    engine = over_levered_engine()
    reports = [engine.monitor(T0 + i * SECOND)[0] for i in range(3)]
    # two hard policies violated: two critical alerts the first time, then de-duplicated
    assert [len(r.alerts) for r in reports] == [2, 0, 0]
    assert {a.level for a in reports[0].alerts} == {AlertLevel.CRITICAL}
    assert [len(r.violations) for r in reports] == [2, 2, 2]
    assert engine.breaker.count(ACCT, T0 + 3 * SECOND) == 3  # not 6, not 1


def test_monitor_when_hard_evaluations_spread_beyond_window_then_no_trip():
    engine = over_levered_engine()
    reports = [engine.monitor(T0 + i * 20 * SECOND)[0] for i in range(10)]
    assert all(r.trip is None for r in reports)


def test_monitor_when_only_soft_violation_then_warning_and_no_breaker_hit():
    engine = make_engine(balance=100_000.0)
    engine.monitor(T0)  # day start 100000
    engine.apply_pnl(PnlSnapshot(ACCT, 88_000.0, None, None, 2))  # daily dd 0.12
    reports = [engine.monitor(T0 + i * SECOND)[0] for i in range(1, 7)]
    alerts = reports[0].alerts  # a 12 % fall within a second is a rapid drawdown too
    assert [a.level for a in alerts] == [AlertLevel.WARNING, AlertLevel.WARNING]
    assert {a.evaluation.policy.name for a in alerts} == {
        "Daily Drawdown Warning",
        "Rapid Drawdown Warning",
    }
    assert all(r.trip is None for r in reports)
    assert engine.breaker.count(ACCT, T0 + 7 * SECOND) == 0
    assert reports[0].risk_level is RiskLevel.HIGH  # utilization 1.2, not breached


def test_monitor_when_no_violation_then_level_from_utilization_and_nothing_to_publish():
    engine = make_engine(balance=10_000.0, btc=60.0)  # leverage 6 → MEDIUM
    [report] = engine.monitor(T0)
    assert report.violations == []
    assert report.alerts == []
    assert report.trip is None
    assert report.risk_level is RiskLevel.MEDIUM
    assert report.utilization["Max Account Leverage"] == pytest.approx(0.6)


def drawdown_engine(
    equity_after: float, auto_trip_state: TradingState = TradingState.HALTED
) -> RiskEngine:
    engine = make_engine(balance=100_000.0, auto_trip_state=auto_trip_state)
    engine.monitor(T0)  # peak 100000
    engine.apply_pnl(PnlSnapshot(ACCT, equity_after, None, None, 2))
    return engine


def test_monitor_when_emergency_policy_violated_then_account_tripped_halted():
    engine = drawdown_engine(70_000.0)  # drawdown 0.30 > 0.25
    [report] = engine.monitor(T0 + SECOND)
    assert report.trip is not None
    assert report.trip.source is StateSource.POLICY
    assert report.trip.reason.startswith("Emergency Drawdown Stop")
    assert report.trading_state is TradingState.HALTED
    assert report.risk_level is RiskLevel.BREACHED
    assert AlertLevel.EMERGENCY in {a.level for a in report.alerts}
    assert engine.states.effective(ACCT).state is TradingState.HALTED


def test_monitor_when_drawdown_below_emergency_then_no_trip():
    engine = drawdown_engine(76_000.0)  # 0.24: hard Max Drawdown only
    [report] = engine.monitor(T0 + SECOND)
    assert report.trip is None
    names = {v.policy.name for v in report.violations}
    assert names == {"Max Drawdown", "Daily Drawdown Warning", "Rapid Drawdown Warning"}


@pytest.mark.parametrize("equity_after", [70_000.0, 76_000.0])
def test_monitor_when_account_already_halted_then_no_new_trip(equity_after):
    engine = drawdown_engine(equity_after)
    engine.states.apply(account_key(ACCT), StateValue(TradingState.HALTED, "operator"), 1)
    reports = [engine.monitor(T0 + i * SECOND)[0] for i in range(1, 7)]
    assert all(r.trip is None for r in reports)
    assert all(r.trading_state is TradingState.HALTED for r in reports)


def test_monitor_when_tripped_then_following_check_denied_emergency_stop_active():
    engine = drawdown_engine(70_000.0)
    assert engine.check(buy_order(), T0 + SECOND, True).reason is DenyReason.POLICY_VIOLATION
    engine.monitor(T0 + 2 * SECOND)
    decision = engine.check(buy_order(), T0 + 3 * SECOND, True)
    assert (decision.approved, decision.reason) == (False, DenyReason.EMERGENCY_STOP_ACTIVE)
    assert engine.states.account_value(ACCT) is None  # the operators' key is not the worker's
    value = engine.states.auto_value(ACCT)
    assert value is not None
    assert value.source is StateSource.POLICY


def test_monitor_when_breaker_trips_then_following_check_denied_emergency_stop_active():
    engine = over_levered_engine()
    for i in range(5):
        engine.monitor(T0 + i * SECOND)
    decision = engine.check(buy_order(), T0 + 5 * SECOND, True)
    assert decision.reason is DenyReason.EMERGENCY_STOP_ACTIVE


def test_monitor_when_emergency_and_global_halt_only_then_account_still_tripped():
    # Only an account-scope HALTED counts as "already halted"; the trip must persist the
    # account stop so it survives an operator clearing the global one.
    engine = drawdown_engine(70_000.0)
    engine.states.apply(GLOBAL_KEY, StateValue(TradingState.HALTED, "ops"), 1)
    [report] = engine.monitor(T0 + SECOND)
    assert report.trip is not None


def test_monitor_when_no_policies_or_unknown_accounts_then_nothing_evaluated():
    engine = RiskEngine(RiskConfig())
    engine.apply_pnl(PnlSnapshot(ACCT, 1_000.0, None, None, 1))
    assert engine.monitor(T0) == []
    engine.load_policies(default_policies())
    engine.book.account("never-seen")
    assert [r.account_id for r in engine.monitor(T0)] == [ACCT]


def test_monitor_when_emergency_persists_after_own_trip_then_not_tripped_again():
    engine = drawdown_engine(70_000.0)
    first = engine.monitor(T0 + SECOND)[0]
    second = engine.monitor(T0 + 2 * SECOND)[0]
    assert first.trip is not None
    assert second.trip is None
    assert second.trading_state is TradingState.HALTED


@pytest.mark.parametrize(
    ("equity_steps", "expected_trips"),
    [
        # tripped at onset; operator clears; still in breach → not overruled
        ([70_000.0, 70_000.0], [True, False]),
        # recovered above the emergency line, then a new breach → tripped again
        ([70_000.0, 80_000.0, 70_000.0], [True, False, True]),
    ],
)
def test_monitor_when_operator_clears_trip_then_only_a_new_breach_onset_trips(
    equity_steps, expected_trips
):
    engine = drawdown_engine(equity_steps[0])
    trips = []
    for i, equity in enumerate(equity_steps, start=1):
        engine.apply_pnl(PnlSnapshot(ACCT, equity, None, None, 2 + i))
        [report] = engine.monitor(T0 + i * SECOND)
        trips.append(report.trip is not None)
        cleared = StateValue(TradingState.ACTIVE, "ok", "bob", T0 + i * SECOND)
        engine.states.apply(auto_key(ACCT), cleared, i)  # operator clears the automatic trip
    assert trips == expected_trips


# Automatic trips set RISK_AUTO_TRIP_STATE, REDUCING by default (issue 10, item 12).


def sell_order(quantity: float, price: float = 1_000.0) -> Order:
    return Order("o2", ACCT, BTC, Side.SELL, quantity, price, OrderType.LIMIT)


def test_engine_when_auto_trip_state_not_given_then_reducing():
    assert RiskEngine(RiskConfig()).auto_trip_state is TradingState.REDUCING
    with pytest.raises(ValueError, match="REDUCING or HALTED"):
        RiskEngine(RiskConfig(), auto_trip_state=TradingState.ACTIVE)


def test_monitor_when_breaker_trips_by_default_then_reducing_sell_approved_and_buy_denied():
    engine = RiskEngine(RiskConfig(mark_max_age_ms=10**12))  # the default: REDUCING
    engine.load_policies(default_policies())
    engine.apply_pnl(PnlSnapshot(ACCT, 1_000.0, None, None, 1))
    engine.set_mark(BTC, 1_000.0, T0, T0)
    engine.apply_position(PositionSnapshot(ACCT, BTC, 12.0, 1_000.0, 1))
    reports = [engine.monitor(T0 + i * SECOND)[0] for i in range(5)]
    trip = reports[-1].trip
    assert trip is not None and trip.state is TradingState.REDUCING
    assert reports[-1].trading_state is TradingState.REDUCING
    value = engine.states.auto_value(ACCT)
    assert value is not None and value.state is TradingState.REDUCING
    sell = engine.check(sell_order(2.0), T0 + 6 * SECOND, True)
    assert sell.approved is True, sell
    buy = engine.check(buy_order(), T0 + 6 * SECOND, True)
    assert buy.reason is DenyReason.REDUCING_ONLY
    # an operator's HALT still blocks everything, the reducing sell too
    engine.states.apply(account_key(ACCT), StateValue(TradingState.HALTED, "desk"), 1)
    halted = engine.check(sell_order(2.0), T0 + 7 * SECOND, True)
    assert halted.reason is DenyReason.EMERGENCY_STOP_ACTIVE


def test_monitor_when_emergency_trips_by_default_then_reducing_sell_approved():
    engine = drawdown_engine(70_000.0, TradingState.REDUCING)
    engine.apply_position(PositionSnapshot(ACCT, BTC, 10.0, 1_000.0, 3))
    [report] = engine.monitor(T0 + SECOND)
    assert report.trip is not None and report.trip.state is TradingState.REDUCING
    sell = engine.check(sell_order(5.0), T0 + 2 * SECOND, True)
    assert sell.approved is True, sell
    assert engine.check(buy_order(), T0 + 2 * SECOND, True).reason is DenyReason.REDUCING_ONLY


# Catch-up of a new lease holder (issue 10, item 13).


def test_monitor_when_standby_saw_onset_then_catch_up_pass_trips():
    engine = drawdown_engine(70_000.0)
    [standby] = engine.monitor(T0 + SECOND, apply_trips=False)  # the onset, seen as standby
    assert standby.trip is not None  # decided, but another instance is to write it
    assert engine.states.effective(ACCT).state is TradingState.ACTIVE
    [later] = engine.monitor(T0 + 2 * SECOND)  # holder now, without catch-up: onset gone
    assert later.trip is None
    [caught] = engine.monitor(T0 + 3 * SECOND, catch_up=True)
    assert caught.trip is not None and caught.trip.source is StateSource.POLICY
    assert engine.states.effective(ACCT).state is TradingState.HALTED


def test_monitor_when_standby_saw_breaker_fire_then_catch_up_pass_trips():
    engine = over_levered_engine()
    for i in range(5):
        engine.monitor(T0 + i * SECOND, apply_trips=False)
    assert engine.breaker.count(ACCT, T0 + 5 * SECOND) == 0  # the hits were consumed
    [caught] = engine.monitor(T0 + 5 * SECOND, catch_up=True)
    assert caught.trip is not None and caught.trip.source is StateSource.CIRCUIT_BREAKER


def test_monitor_when_breaker_fired_beyond_window_then_catch_up_does_not_trip():
    engine = over_levered_engine()
    for i in range(5):
        engine.monitor(T0 + i * SECOND, apply_trips=False)
    engine.apply_position(PositionSnapshot(ACCT, BTC, 1.0, 1_000.0, 2))  # no longer in breach
    [caught] = engine.monitor(T0 + 70 * SECOND, catch_up=True)
    assert caught.trip is None


@pytest.mark.parametrize(("cleared_after_onset", "tripped"), [(True, False), (False, True)])
def test_monitor_when_operator_cleared_after_onset_then_catch_up_respects_the_clear(
    cleared_after_onset, tripped
):
    engine = drawdown_engine(70_000.0)
    engine.monitor(T0 + SECOND, apply_trips=False)  # onset at T0 + 1 s
    cleared_at = T0 + 2 * SECOND if cleared_after_onset else T0
    engine.states.apply(auto_key(ACCT), StateValue(TradingState.ACTIVE, "ok", "bob", cleared_at), 1)
    [caught] = engine.monitor(T0 + 3 * SECOND, catch_up=True)
    assert (caught.trip is not None) is tripped


def test_monitor_when_catch_up_and_already_tripped_then_not_tripped_again():
    engine = drawdown_engine(70_000.0)
    engine.monitor(T0 + SECOND, apply_trips=False)
    engine.states.apply(auto_key(ACCT), StateValue(TradingState.HALTED, "dd", "w0"), 1)
    [caught] = engine.monitor(T0 + 2 * SECOND, catch_up=True)
    assert caught.trip is None


def test_monitor_when_standby_passes_with_catch_up_then_nothing_tripped():
    engine = drawdown_engine(70_000.0)
    engine.monitor(T0 + SECOND, apply_trips=False)
    [report] = engine.monitor(T0 + 2 * SECOND, apply_trips=False, catch_up=True)
    assert engine.states.effective(ACCT).state is TradingState.ACTIVE
    assert report.trip is None
