"""RiskConfig and AccountMetrics as plain classes (native ones in the compiled core): the
constructors, equality, hashing and repr of the msgspec Structs they were."""

from __future__ import annotations

import pytest

from risk_worker import _core
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.types import utc_day
from risk_worker.domain.var_result import VarConfig


def metrics(equity: float = 1_000.0, **kwargs: object) -> AccountMetrics:
    return AccountMetrics(
        equity, 900.0, 100.0, 500.0, 400.0, -50.0, 50.0, 0.0, 0.0, 0, 1, {"BTC": 500.0}, (),
        1_200.0, 1_100.0, **kwargs,
    )  # fmt: skip


def test_risk_config_when_defaults_then_as_the_struct_and_fresh_containers():
    a, b = RiskConfig(), RiskConfig()
    assert (a.default_margin_rate, a.mark_max_age_ms, a.pending_ttl_ms) == (0.10, 30_000, 60_000)
    assert (a.trading_day, a.drawdown_window_ms, a.var) == (utc_day, 300_000, VarConfig())
    assert a.margin_rates == {} and a.margin_rates is not b.margin_rates
    assert a.var is not b.var
    assert a == b and a != RiskConfig(margin_rates={"BTC": 0.2})
    assert RiskConfig(0.05, {"BTC": 0.2}).margin_rate("BTC") == 0.2
    assert RiskConfig(0.05, {"BTC": 0.2}).margin_rate("ETH") == 0.05
    assert repr(a).startswith("RiskConfig(default_margin_rate=0.1, margin_rates={}, ")


def test_risk_config_when_hashed_then_by_value_as_the_frozen_struct():
    # the frozen Struct hashed its fields: a dict among them is unhashable, as before
    with pytest.raises(TypeError):
        hash(RiskConfig())


@pytest.mark.skipif(_core.STATUS.active != "compiled", reason="only a native class enforces")
def test_risk_config_when_compiled_then_fields_read_only():
    with pytest.raises(AttributeError):
        RiskConfig().mark_max_age_ms = 1  # type: ignore[misc]


def test_account_metrics_when_compared_then_field_by_field_and_unhashable():
    assert metrics() == metrics() and metrics() != metrics(999.0)
    assert metrics() != metrics(window_peak_equity=1.0)
    assert metrics().window_peak_equity == 0.0 and metrics().var is None
    with pytest.raises(TypeError):
        hash(metrics())
    assert repr(metrics()).startswith("AccountMetrics(equity=1000.0, balance=900.0, ")
    assert repr(metrics()).endswith("window_peak_equity=0.0, var=None, notional_summary=None)")


def test_account_metrics_when_read_then_properties_as_before():
    m = metrics()
    assert m.leverage == 0.5 and m.margin_ratio == 20.0 and m.available_margin == 950.0
    assert m.drawdown_max == pytest.approx(200.0 / 1_200.0)
    assert m.daily_pnl == -100.0 and m.net_exposure_extreme == 400.0
    assert m.concentrations() == {"BTC": 0.5} and m.concentration() == 0.5
