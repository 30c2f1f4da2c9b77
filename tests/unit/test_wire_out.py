"""Outbound messages: infinities become null, and the shortcuts change no byte of a reply."""

from __future__ import annotations

import math

import msgspec
import pytest

from risk_worker.domain.order import Decision
from risk_worker.domain.policies import Evaluation, Policy
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.types import (
    DenyReason,
    Metric,
    Operator,
    PolicyType,
    RiskLevel,
    TradingState,
)
from risk_worker.wire.numbers import finite, finite_values
from risk_worker.wire.outbound import metrics_msg, reply_msg

NOTIONAL = {"BTCUSDT": 3_000.0, "ETHUSDT": 0.0, "SOLUSDT": 1e308}


def metrics(equity: float, notional: dict[str, float] | None = None) -> AccountMetrics:
    return AccountMetrics(
        equity=equity,
        balance=900.0,
        unrealized_pnl=100.0,
        gross_exposure=4_000.0,
        net_exposure=2_000.0,
        net_exposure_low=1_500.0,
        position_margin=400.0,
        pending_notional=0.0,
        pending_margin=0.0,
        pending_orders=0,
        open_positions=2,
        position_notional=dict(NOTIONAL if notional is None else notional),
        stale_symbols=(),
        peak_equity=1_250.0,
        day_start_equity=1_100.0,
    )


@pytest.mark.parametrize("equity", [1_000.0, 1e-300, 0.5, 0.0, -5.0, math.inf, math.nan])
def test_concentrations_when_any_equity_then_each_is_what_concentration_says(equity):
    m = metrics(equity)
    got = m.concentrations()
    assert list(got) == list(NOTIONAL)
    for symbol, value in got.items():
        want = m.concentration(symbol)
        assert value == want or (math.isnan(value) and math.isnan(want))


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"a": 0.5, "b": 2.0},
        {"a": math.inf, "b": 1.0},
        {"a": math.nan},
        {"a": 1e308, "b": 1e308},
    ],
)
def test_finite_values_when_any_values_then_like_finite_of_each(values):
    got = finite_values(values)
    assert msgspec.json.encode(got) == msgspec.json.encode(
        {k: finite(v) for k, v in values.items()}
    )
    if all(math.isfinite(v) for v in values.values()) and math.isfinite(sum(values.values())):
        assert got is values  # no copy when nothing needs converting


def reference_metrics_msg(m: AccountMetrics, utilization: dict[str, float]) -> bytes:
    """The message as built before the shortcuts: every value through finite()."""
    body = msgspec.to_builtins(
        metrics_msg("a1", 7, m, utilization, RiskLevel.LOW, TradingState.ACTIVE, "w")
    )
    body["position_concentration"] = {s: finite(m.concentration(s)) for s in m.position_notional}
    body["limit_utilization"] = {n: finite(u) for n, u in utilization.items()}
    return msgspec.json.encode(body)


@pytest.mark.parametrize("equity", [1_000.0, 1e-300, 0.0, -5.0])
@pytest.mark.parametrize("utilization", [{"p": 0.25, "q": 0.0}, {"p": math.inf, "q": 1.5}])
def test_metrics_msg_when_encoded_then_same_bytes_as_converting_every_value(equity, utilization):
    m = metrics(equity)
    got = msgspec.json.encode(
        metrics_msg("a1", 7, m, utilization, RiskLevel.LOW, TradingState.ACTIVE, "w")
    )
    assert got == reference_metrics_msg(m, utilization)
    assert b"Infinity" not in got and b"NaN" not in got


def test_reply_msg_when_denied_with_violation_then_lists_it_and_the_reason_code():
    p = Policy("id", "Max Lev", PolicyType.HARD, Metric.LEVERAGE, Operator.LTE, 10.0)
    ev = Evaluation(p, math.inf, None, True)
    decision = Decision(
        False, DenyReason.POLICY_VIOLATION, ev.message, RiskLevel.BREACHED, violations=[ev]
    )
    reply = msgspec.to_builtins(reply_msg("o1", "a1", decision, 7, 3, "w"))
    assert reply["rejection_reason"] == "policy_violation"
    assert reply["warnings"] == []
    assert [(v["policy_id"], v["value"]) for v in reply["violations"]] == [("id", None)]
    assert reply["post_trade_metrics"] is None
