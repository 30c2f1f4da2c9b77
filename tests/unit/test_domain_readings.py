"""The check's readings are the metric readers' values to the last bit, on random metrics."""

from __future__ import annotations

import math
import random

import pytest

from risk_worker.domain.policies import (
    COMPARE,
    ORDER_METRICS,
    READERS,
    READS_ACCOUNT,
    metric_value,
    strategy_reader_of,
)
from risk_worker.domain.readings import (
    OP_CODE,
    account_readings,
    holds,
    slot_of,
    strategy_readings,
    symbol_reading,
)
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.strategy_metrics import STRATEGY_READERS, StrategyMetrics
from risk_worker.domain.types import Metric, Operator
from risk_worker.domain.var import VarResult

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
EDGES = (0.0, -0.0, 1.0, -1.0, 1e-300, -1e-300, 7.25, -3.5, 1e15, -1e15, math.inf, -math.inf)


def same(a: float, b: float) -> bool:
    """Equal bit for bit: NaN with NaN, and the sign of a zero."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def number(rng: random.Random) -> float:
    return rng.choice(EDGES) if rng.random() < 0.3 else rng.uniform(-2e6, 2e6)


def notionals(rng: random.Random) -> dict[str, float]:
    picked = rng.sample(SYMBOLS, rng.randint(0, len(SYMBOLS)))
    return {s: rng.choice((0.0, abs(number(rng)))) for s in picked}


def account_metrics(rng: random.Random) -> AccountMetrics:
    held = notionals(rng)
    var = rng.choice(
        (
            None,
            VarResult(None, None, None, 0, ("BTCUSDT",)),
            VarResult(abs(number(rng)), abs(number(rng)), abs(number(rng)), 300),
            VarResult(0.0, 0.0, 0.0, 300),
        )
    )
    return AccountMetrics(
        *(number(rng) for _ in range(9)),
        rng.randint(0, 5),
        len(held),
        held,
        (),
        number(rng),
        number(rng),
        number(rng),
        var,
    )


def strategy_metrics(rng: random.Random) -> StrategyMetrics:
    return StrategyMetrics(
        "s1",
        *(number(rng) for _ in range(3)),
        notionals(rng),
        rng.randint(0, 5),
        *(number(rng) for _ in range(7)),
    )


POST_TRADE = [m for m in READERS if m not in ORDER_METRICS]


@pytest.mark.parametrize("seed", range(30))
def test_account_readings_when_random_metrics_then_equal_the_readers_bit_for_bit(seed):
    rng = random.Random(seed)
    for _ in range(40):
        m = account_metrics(rng)
        readings = account_readings(m)
        for metric in POST_TRADE:
            for op in Operator:
                slot = slot_of(metric, op)
                for symbol in (None, *SYMBOLS):
                    expected = metric_value(metric, m, symbol, op=op)
                    assert expected is not None
                    got = (
                        readings[slot]
                        if slot >= 0
                        else symbol_reading(slot, m.position_notional, m.equity, symbol)
                    )
                    assert same(got, expected), (metric, op, symbol, got, expected)


@pytest.mark.parametrize("seed", range(30))
def test_strategy_readings_when_random_metrics_then_equal_the_readers_bit_for_bit(seed):
    rng = random.Random(seed)
    for _ in range(40):
        m = strategy_metrics(rng)
        readings = strategy_readings(m)
        for metric in STRATEGY_READERS:
            for op in Operator:
                slot = slot_of(metric, op)
                reads, read = strategy_reader_of(metric, op)
                if reads == READS_ACCOUNT:
                    expected = read(m)
                    got = readings[slot]
                else:
                    expected = read(m, None)  # strategy-scoped: the largest position
                    got = symbol_reading(slot, m.position_notional, m.account_equity, None)
                assert same(got, expected), (metric, op, got, expected)


@pytest.mark.parametrize("op", list(Operator))
def test_holds_when_any_values_then_as_the_operator_functions(op):
    values = (*EDGES, math.nan, 0.5, 2.0)
    for value in values:
        for threshold in (0.0, 1.0, -1.0, 0.5, 1e15):
            assert holds(OP_CODE[op], value, threshold) is COMPARE[op](value, threshold)


def test_slot_of_when_order_metric_then_refused():
    for metric in ORDER_METRICS:
        with pytest.raises(KeyError):
            slot_of(metric, Operator.LTE)
    assert slot_of(Metric.NET_EXPOSURE, Operator.GTE) != slot_of(Metric.NET_EXPOSURE, Operator.LTE)
