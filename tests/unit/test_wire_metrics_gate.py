"""When ``risk.metrics`` is published: the change rule and the spread of forced republishes."""

from __future__ import annotations

import collections
import itertools
from typing import Any

import msgspec
import pytest

from risk_worker.domain.types import RiskLevel, TradingState
from risk_worker.wire import metrics_gate
from risk_worker.wire.metrics_gate import MetricsGate, metrics_moved, phase_ms, turn_came
from risk_worker.wire.outbound import RiskMetricsMsg
from risk_worker.wire.strategies import StrategyMetricsMsg

T0 = 1_700_000_000_000
RULE = 0.001


def strategy(**over: Any) -> StrategyMetricsMsg:
    values: dict[str, Any] = {
        "gross_exposure": 50_000.0,
        "net_exposure": 50_000.0,
        "realized_pnl": 1_000.0,
        "unrealized_pnl": 0.0,
        "pnl": 1_000.0,
        "daily_pnl": 0.0,
        "peak_pnl": 1_000.0,
        "drawdown_max": 0.0,
        "drawdown_daily": 0.0,
        "leverage": 0.5,
        "position_notional": {"BTCUSDT": 50_000.0},
        "open_positions": 1,
        "pending_orders": 0,
        "limit_utilization": {"Strategy Drawdown": 0.0},
        "risk_level": RiskLevel.LOW,
        "trading_state": TradingState.ACTIVE,
        "stale_marks": False,
    }
    return StrategyMetricsMsg(**(values | over))


def metrics(**over: Any) -> RiskMetricsMsg:
    """An account of 100k equity, long 200k of BTC (2x)."""
    values: dict[str, Any] = {
        "account_id": "ACC1",
        "timestamp": T0,
        "equity": 100_000.0,
        "balance": 100_000.0,
        "unrealized_pnl": 0.0,
        "daily_pnl": 0.0,
        "margin_used": 20_000.0,
        "available_margin": 80_000.0,
        "margin_ratio": 5.0,
        "leverage": 2.0,
        "gross_exposure": 200_000.0,
        "net_exposure": 200_000.0,
        "drawdown_daily": 0.0,
        "drawdown_max": 0.0,
        "peak_equity": 100_000.0,
        "day_start_equity": 100_000.0,
        "drawdown_window": 0.0,
        "window_peak_equity": 100_000.0,
        "position_concentration": {"BTCUSDT": 2.0},
        "limit_utilization": {"Max Account Leverage": 0.2, "Max Drawdown": 0.0},
        "open_positions": 1,
        "pending_orders": 0,
        "risk_level": RiskLevel.LOW,
        "trading_state": TradingState.ACTIVE,
        "stale_marks": False,
        "worker_id": "w1",
        "var_95": 1_000.0,
        "var_99": 2_000.0,
        "es_97_5": 2_500.0,
        "var_99_fraction": 0.02,
        "strategies": {"momo": strategy()},
    }
    return RiskMetricsMsg(**(values | over))


BASE = metrics()


def test_moved_when_only_the_timestamp_differs_then_not() -> None:
    assert not metrics_moved(BASE, metrics(timestamp=T0 + 60_000), RULE)


@pytest.mark.parametrize(
    ("over", "moved"),
    [
        ({"equity": 100_090.0}, False),  # 0.09 % of equity
        ({"equity": 100_110.0}, True),  # 0.11 %
        ({"gross_exposure": 200_190.0}, False),  # 0.095 % of itself
        ({"gross_exposure": 200_210.0}, True),
        # near zero: measured against the account's equity, not itself
        ({"unrealized_pnl": 90.0}, False),
        ({"unrealized_pnl": 110.0}, True),
        ({"net_exposure": -200_000.0}, True),  # the sign flipped
        ({"leverage": 2.0019}, False),  # ratios: 0.1 % of the larger of |value| and 1
        ({"leverage": 2.003}, True),
        ({"leverage": None}, True),  # became infinite
        ({"margin_ratio": None}, True),
        ({"drawdown_max": 0.0009}, False),  # fractions: 0.1 percentage point
        ({"drawdown_max": 0.0011}, True),
        ({"var_99": None}, True),  # no longer computable
        ({"position_concentration": {"BTCUSDT": 2.01}}, True),
        ({"position_concentration": {"BTCUSDT": 2.0, "ETHUSDT": 0.0}}, True),  # a new symbol
        ({"limit_utilization": {"Max Account Leverage": 0.2009, "Max Drawdown": 0.0}}, False),
        ({"limit_utilization": {"Max Account Leverage": 0.21, "Max Drawdown": 0.0}}, True),
        ({"limit_utilization": {"Max Account Leverage": 0.2}}, True),  # a policy went
        ({"limit_utilization": {"Max Account Leverage": 0.2, "Max Drawdown": None}}, True),
        ({"open_positions": 2}, True),
        ({"pending_orders": 1}, True),
        ({"risk_level": RiskLevel.MEDIUM}, True),
        ({"trading_state": TradingState.REDUCING}, True),
        ({"stale_marks": True}, True),
        ({"worker_id": "w2"}, True),
        ({"strategies": None}, True),
        ({"strategies": {}}, True),
        ({"strategies": {"momo": strategy(), "carry": strategy()}}, True),
        ({"strategies": {"momo": strategy(pnl=1_090.0)}}, False),  # 0.09 % of account equity
        ({"strategies": {"momo": strategy(pnl=1_110.0)}}, True),
        ({"strategies": {"momo": strategy(position_notional={"BTCUSDT": 50_200.0})}}, True),
        ({"strategies": {"momo": strategy(risk_level=RiskLevel.HIGH)}}, True),
        ({"strategies": {"momo": strategy(trading_state=TradingState.HALTED)}}, True),
        ({"strategies": {"momo": strategy(limit_utilization={"Strategy Drawdown": 1.2})}}, True),
    ],
)
def test_moved_when_a_field_changes_then_by_the_rule(over: dict[str, Any], moved: bool) -> None:
    assert metrics_moved(BASE, metrics(**over), RULE) is moved
    assert metrics_moved(metrics(**over), BASE, RULE) is moved  # symmetric


def test_moved_when_a_utilization_crosses_one_then_moved_however_small_the_step() -> None:
    before = metrics(limit_utilization={"Max Drawdown": 0.9999})
    after = metrics(limit_utilization={"Max Drawdown": 1.0001})
    assert metrics_moved(before, after, RULE)
    assert not metrics_moved(after, metrics(limit_utilization={"Max Drawdown": 1.0009}), RULE)


def test_moved_when_the_account_is_empty_then_the_floor_is_one_quote_unit() -> None:
    empty = metrics(equity=0.0, balance=0.0, unrealized_pnl=0.0)
    assert not metrics_moved(empty, metrics(equity=0.0, balance=0.0009), RULE)
    assert metrics_moved(empty, metrics(equity=0.0, balance=0.0011), RULE)


def test_moved_when_threshold_zero_then_any_change_and_nan_always() -> None:
    assert metrics_moved(BASE, metrics(equity=100_000.000001), 0.0)
    assert not metrics_moved(BASE, metrics(timestamp=T0 + 1), 0.0)
    assert metrics_moved(BASE, metrics(equity=float("nan")), RULE)
    assert metrics_moved(BASE, metrics(var_95=float("nan")), RULE)


@pytest.mark.parametrize("field", [f for f in RiskMetricsMsg.__struct_fields__ if f != "timestamp"])
def test_moved_when_any_field_but_the_timestamp_changes_a_lot_then_moved(field: str) -> None:
    """Every field is compared (a new field without a rule fails at import)."""
    assert set(metrics_gate._METRICS_KINDS) == set(RiskMetricsMsg.__struct_fields__)
    assert set(metrics_gate._STRATEGY_KINDS) == set(StrategyMetricsMsg.__struct_fields__)
    value = msgspec.structs.asdict(BASE)[field]
    if isinstance(value, bool):
        changed: Any = not value
    elif isinstance(value, (int, float)):
        changed = value * 3 + 1_000
    elif field in ("risk_level", "trading_state"):
        changed = RiskLevel.BREACHED if field == "risk_level" else TradingState.HALTED
    elif isinstance(value, str):
        changed = value + "x"
    else:
        changed = {}
    assert metrics_moved(BASE, metrics(**{field: changed}), RULE)


# the forced republishes


def test_phase_when_computed_then_stable_and_within_the_period() -> None:
    assert phase_ms("ACC1", 5_000) == phase_ms("ACC1", 5_000)
    assert all(0 <= phase_ms(f"A{i}", 5_000) < 5_000 for i in range(1_000))
    assert phase_ms("ACC1", 0) == 0


def test_phase_when_1000_accounts_then_spread_over_the_period() -> None:
    per_second = collections.Counter(phase_ms(f"ACC{i:04d}", 5_000) // 1_000 for i in range(1_000))
    assert sorted(per_second) == [0, 1, 2, 3, 4]
    assert all(150 <= n <= 250 for n in per_second.values()), per_second


@pytest.mark.parametrize(
    ("last", "now", "due"),
    [
        (T0 + 700, T0 + 999, False),  # no point k × 5 s + 1 s passed
        (T0 + 999, T0 + 1_000, True),  # the point at T0 + 1 s
        (T0 + 1_000, T0 + 5_999, False),
        (T0 + 1_000, T0 + 6_000, True),  # exactly one period later
        (T0 + 4_000, T0 + 6_500, True),  # published in between: the next point still counts
        (T0 + 6_000, T0 + 2_000, True),  # the clock went back
    ],
)
def test_turn_came_when_a_phase_point_passed_then_due(last: int, now: int, due: bool) -> None:
    phase = (T0 + 1_000) % 5_000
    assert turn_came(last, now, phase, 5_000) is due


def test_gate_when_accounts_unchanged_then_each_republished_once_per_interval_spread() -> None:
    """1,000 unchanged accounts, a pass a second, 5 s: all at the first pass, then ~200 a
    pass, each exactly every 5 s."""
    gate = MetricsGate(RULE, 5_000)
    accounts = [metrics(account_id=f"ACC{i:04d}") for i in range(1_000)]
    times: dict[str, list[int]] = collections.defaultdict(list)
    per_pass = []
    for k in range(21):
        now = T0 + 123 + k * 1_000
        sent = [m for m in accounts if gate.due(m, now)]
        for m in sent:
            gate.published(m, now)
            times[m.account_id].append(now)
        per_pass.append(len(sent))
    assert per_pass[0] == 1_000
    assert all(150 <= n <= 250 for n in per_pass[1:]), per_pass
    assert sum(per_pass[1:]) == 4 * 1_000  # 20 s: four turns each
    gaps = {b - a for ts in times.values() for a, b in itertools.pairwise(ts[1:])}
    assert gaps == {5_000}


def test_gate_when_figures_move_or_forced_then_published_at_once_and_turns_kept() -> None:
    gate = MetricsGate(RULE, 5_000)
    gate.published(BASE, T0)
    phase = phase_ms("ACC1", 5_000)
    quiet = T0 + next(d for d in range(1, 5_000) if not turn_came(T0, T0 + d + 1_000, phase, 5_000))
    assert not gate.due(metrics(timestamp=quiet), quiet)
    assert gate.due(metrics(equity=101_000.0), quiet)
    assert gate.due(BASE, quiet, force=True)
    moved = metrics(equity=101_000.0)
    gate.published(moved, quiet)
    assert not gate.due(moved, quiet + 1)  # compared with the last published now
    assert gate.due(moved, quiet + 5_000)  # its turn within one interval whatever published it


def test_gate_when_reset_or_account_gone_then_published_as_new() -> None:
    gate = MetricsGate(RULE, 5_000)
    other = metrics(account_id="ACC2")
    gate.published(BASE, T0)
    gate.published(other, T0)
    gate.retain(["ACC1"])
    assert len(gate) == 1 and gate.due(other, T0 + 1)
    gate.reset()
    assert len(gate) == 0 and gate.due(BASE, T0 + 1)
