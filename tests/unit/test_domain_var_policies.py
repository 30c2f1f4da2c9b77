"""VaR policies in the pre-trade check and the monitor (issue 13): a check that pushes
var_99_fraction over a hard limit is denied; too little history denies only risk-increasing
orders on the symbol short of it (insufficient_history)."""

from __future__ import annotations

import math
import random

import pytest

from risk_worker.domain.book_events import PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Order
from risk_worker.domain.policies import Policy
from risk_worker.domain.types import DenyReason, Metric, Operator, OrderType, PolicyType, Side
from risk_worker.domain.var import historical_var
from risk_worker.service.var_task import VarSampler
from risk_worker.wire.outbound import metrics_msg
from tests.decision_kit import ACCT, BTC, NOW, make_engine

ETH = "ETHUSDT"
MIN = 60_000
VAR_CAP = Policy(
    "id-var", "Max VaR 99", PolicyType.HARD, Metric.VAR_99_FRACTION, Operator.LTE, 0.25
)


def seed(engine: RiskEngine, symbol: str, minutes: int, start: float, seed_: int = 7) -> None:
    """``minutes`` consecutive one-minute samples of a random walk with ~1 % steps."""
    rng = random.Random(seed_)
    first = NOW // MIN - minutes
    price = start
    for minute in range(first, first + minutes):
        assert engine.book.returns.record(symbol, minute * MIN, price)
        price *= math.exp(rng.gauss(0.0, 0.01))


def engine_with(btc_minutes: int, eth_minutes: int = 300, btc_held: float = 0.0) -> RiskEngine:
    engine = make_engine(position=(btc_held, 1_000.0) if btc_held else None, policies=[VAR_CAP])
    engine.set_mark(BTC, 1_000.0, NOW, NOW)
    engine.set_mark(ETH, 100.0, NOW, NOW)
    seed(engine, BTC, btc_minutes, 1_000.0)
    seed(engine, ETH, eth_minutes, 100.0, seed_=11)
    return engine


def order(side: Side, quantity: float, symbol: str = BTC, price: float = 1_000.0) -> Order:
    return Order("o1", ACCT, symbol, side, quantity, price, OrderType.LIMIT, timestamp=NOW)


def test_check_when_order_pushes_var_99_fraction_over_hard_limit_then_policy_violation() -> None:
    engine = engine_with(btc_minutes=300)
    expected = historical_var({BTC: 5_000.0}, engine.book.returns, 120, 86_400)
    assert expected.var_99 is not None and expected.var_99 / 10_000.0 > 0.25  # the premise

    decision = engine.check(order(Side.BUY, 5.0), NOW, True)

    assert not decision.approved
    assert decision.reason is DenyReason.POLICY_VIOLATION
    assert "Max VaR 99: var_99_fraction" in decision.message
    assert decision.violations[0].value == pytest.approx(expected.var_99 / 10_000.0)


def test_check_when_var_99_fraction_stays_under_the_limit_then_approved() -> None:
    engine = engine_with(btc_minutes=300)

    decision = engine.check(order(Side.BUY, 0.1), NOW, True)

    assert decision.approved, decision.message
    assert decision.metrics is not None and decision.metrics.var is not None
    assert 0.0 < decision.utilization["Max VaR 99"] < 1.0


def test_check_when_symbol_has_too_little_history_then_increasing_order_insufficient_history() -> (
    None
):
    engine = engine_with(btc_minutes=50)

    decision = engine.check(order(Side.BUY, 0.1), NOW, True)

    assert not decision.approved
    assert decision.reason is DenyReason.INSUFFICIENT_HISTORY
    assert BTC in decision.message and "var_99_fraction" in decision.message


def test_check_when_symbol_has_too_little_history_then_reducing_order_approved() -> None:
    engine = engine_with(btc_minutes=50, btc_held=2.0)

    decision = engine.check(order(Side.SELL, 1.0), NOW, True)

    assert decision.approved, decision.message


def test_check_when_another_held_symbol_lacks_history_then_orders_on_others_pass() -> None:
    engine = engine_with(btc_minutes=50, btc_held=2.0)

    decision = engine.check(order(Side.BUY, 1.0, ETH, 100.0), NOW, True)

    assert decision.approved, decision.message
    assert decision.metrics is not None and decision.metrics.var is not None
    assert decision.metrics.var.var_99 is None and decision.metrics.var.lacking == (BTC,)


def test_monitor_when_history_is_short_then_var_policy_neither_alerts_nor_trips() -> None:
    engine = engine_with(btc_minutes=50, btc_held=5.0)

    (report,) = engine.monitor(NOW)

    assert report.violations == [] and report.alerts == [] and report.trip is None
    msg = metrics_msg(ACCT, NOW, report.metrics, report.utilization, report.risk_level, "ACTIVE")
    assert (msg.var_95, msg.var_99, msg.es_97_5, msg.var_99_fraction) == (None,) * 4


def test_monitor_when_var_over_hard_limit_then_alerts_and_publishes_the_values() -> None:
    engine = engine_with(btc_minutes=300, btc_held=5.0)
    expected = historical_var({BTC: 5_000.0}, engine.book.returns, 120, 86_400)

    (report,) = engine.monitor(NOW)

    assert [v.policy.id for v in report.violations] == ["id-var"]
    assert report.alerts and report.alerts[0].evaluation.policy.metric is Metric.VAR_99_FRACTION
    msg = metrics_msg(ACCT, NOW, report.metrics, report.utilization, report.risk_level, "ACTIVE")
    assert (msg.var_95, msg.var_99, msg.es_97_5) == (
        expected.var_95,
        expected.var_99,
        expected.es_97_5,
    )
    assert msg.var_99_fraction == pytest.approx(expected.var_99_fraction(10_000.0))


def test_check_when_reservations_pending_then_var_counts_their_worst_case() -> None:
    engine = engine_with(btc_minutes=300)
    engine.apply_position(PositionSnapshot(ACCT, BTC, 1.0, 1_000.0, 2))
    first = order(Side.BUY, 1.0)
    assert engine.check(first, NOW, True).approved  # reserved: worst case long 2 BTC

    second = Order("o2", ACCT, BTC, Side.BUY, 0.5, 1_000.0, OrderType.LIMIT, timestamp=NOW)
    decision = engine.check(second, NOW, True)

    expected = historical_var({BTC: 2_500.0}, engine.book.returns, 120, 86_400)
    assert decision.metrics is not None and decision.metrics.var == expected


def test_engine_when_ticks_flow_across_minutes_then_var_history_fills() -> None:
    engine = make_engine(policies=[VAR_CAP])
    start = (NOW // MIN) * MIN
    for k in range(130):
        engine.set_mark(ETH, 100.0 + k % 7, start + k * MIN - 5_000, start + k * MIN - 5_000)
    engine.sample_marks(start + 130 * MIN)

    samples = engine.book.returns.samples(ETH)
    assert len(samples) == 131  # each boundary takes the mark set 5 s before it
    assert samples[0] == (start, 100.0) and samples[1] == (start + MIN, 101.0)
    assert engine.book.returns.return_count(ETH) == 130


def test_sampler_when_no_tick_since_then_the_held_mark_is_sampled_at_each_boundary() -> None:
    engine = make_engine(policies=[VAR_CAP])
    start = (NOW // MIN) * MIN
    engine.set_mark(ETH, 100.0, start - 1, start - 1)
    clock = [start + 3 * MIN + 10]
    sampler = VarSampler(engine, None, lambda: clock[0])

    assert sampler.sample() == 4  # start, +1, +2, +3 min
    clock[0] += MIN
    assert sampler.sample() == 1
    assert engine.book.returns.return_count(ETH) == 4


def test_check_when_reducing_order_leaves_a_var_breach_that_held_before_then_approved() -> None:
    engine = engine_with(btc_minutes=300, btc_held=5.0)

    decision = engine.check(order(Side.SELL, 1.0), NOW, True)

    assert decision.approved, decision.message
    assert [w.policy.id for w in decision.warnings] == ["id-var"]  # still over: a warning
    buy = Order("o2", ACCT, BTC, Side.BUY, 0.01, 1_000.0, OrderType.LIMIT, timestamp=NOW)
    increasing = engine.check(buy, NOW, True)
    assert increasing.reason is DenyReason.POLICY_VIOLATION


def test_monitor_without_var_policy_then_var_published_and_recomputed_at_new_samples() -> None:
    engine = engine_with(btc_minutes=300, btc_held=5.0)
    engine.load_policies([])
    expected = historical_var({BTC: 5_000.0}, engine.book.returns, 120, 86_400)

    (first,) = engine.monitor(NOW)
    engine.apply_position(PositionSnapshot(ACCT, BTC, 1.0, 1_000.0, 2))
    (same,) = engine.monitor(NOW)
    engine.sample_marks(NOW + MIN)
    (fresh,) = engine.monitor(NOW + MIN)

    assert first.metrics.var == expected
    assert same.metrics.var is first.metrics.var  # no new sample: the last result
    assert fresh.metrics.var is not None and fresh.metrics.var.var_99 is not None
    assert expected.var_99 is not None
    assert fresh.metrics.var.var_99 < expected.var_99  # 1 BTC now


async def test_sampler_when_a_boundary_passes_then_stale_symbol_sets_rebuilt() -> None:
    engine = engine_with(btc_minutes=300, btc_held=5.0)
    returns = engine.book.returns
    built = returns.aligned((BTC,))
    sampler = VarSampler(engine, None, lambda: NOW + MIN)

    sampler.sample()
    assert returns.stale_sets() == [(BTC,)]
    assert await sampler.rebuild() == 1

    assert returns.stale_sets() == []
    assert returns.aligned((BTC,)) is not built
