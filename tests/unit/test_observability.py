"""Metrics: names, closed label sets, zeros before the first event, and the cheap check path."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from risk_worker import _core
from risk_worker.domain.reports import AlertLevel
from risk_worker.domain.types import DenyReason, PolicyType, StateSource, TradingState
from risk_worker.service.observability import EVENT_KINDS, INVALID_REASONS, Metrics


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the registry, keyed by (name, labels)."""
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def test_metrics_when_created_then_every_named_metric_is_exposed() -> None:
    names = {name for name, _ in samples(Metrics())}
    expected = {
        "risk_order_checks_total",
        "risk_order_check_duration_seconds_count",
        "risk_events_total",
        "risk_events_invalid_total",
        "risk_trading_state_global",
        "risk_accounts_halted",
        "risk_violations_total",
        "risk_alerts_published_total",
        "risk_alerts_deduplicated_total",
        "risk_circuit_breaker_trips_total",
        "risk_persist_queue_depth",
        "risk_persist_failures_total",
        "risk_nats_reconnects_total",
        "risk_accounts",
        "risk_stale_marks",
        "risk_trading_state_confirmed",
        "risk_accounts_by_risk_level",
        "risk_trips_total",
        "risk_checks_forwarded_total",
        "risk_metrics_messages_total",
    }
    assert expected <= names
    assert all(name.startswith("risk_") for name in names)


def test_metrics_when_created_then_the_decision_core_running_is_1() -> None:
    cores = {
        dict(labels)["core"]: v
        for (name, labels), v in samples(Metrics()).items()
        if name == "risk_decision_core"
    }
    assert cores == {_core.STATUS.active: 1.0}


def test_metrics_when_created_then_registers_nothing_globally() -> None:
    Metrics()
    assert b"risk_order_checks_total" not in generate_latest(REGISTRY)


def test_metrics_when_created_then_known_label_combinations_are_zero() -> None:
    m = Metrics()
    assert value(m, "risk_order_checks_total", result="approved", reason="none") == 0
    for reason in DenyReason:
        assert value(m, "risk_order_checks_total", result="denied", reason=reason.value) == 0
    for kind in EVENT_KINDS:
        assert value(m, "risk_events_total", kind=kind) == 0
        for why in INVALID_REASONS:
            assert value(m, "risk_events_invalid_total", kind=kind, reason=why) == 0
    for policy_type in PolicyType:
        for source in ("pre_trade", "monitor"):
            labels = {"policy_type": policy_type.value, "source": source}
            assert value(m, "risk_violations_total", **labels) == 0
    for level in AlertLevel:
        assert value(m, "risk_alerts_published_total", level=level.value) == 0


def test_check_duration_buckets_span_10_microseconds_to_100_ms() -> None:
    bounds = sorted(
        float(dict(labels)["le"])
        for name, labels in samples(Metrics())
        if name == "risk_order_check_duration_seconds_bucket"
    )
    assert bounds[0] == pytest.approx(1e-5)
    assert bounds[-2] == pytest.approx(0.1)
    assert bounds[-1] == float("inf")


def test_check_when_approved_or_denied_then_counts_by_result_and_reason() -> None:
    m = Metrics()
    m.check(None, 0.00002)
    m.check(DenyReason.INSUFFICIENT_MARGIN, 0.00003)
    m.check("insufficient_margin", 0.2)
    m.check("not_a_reason", 0.0)
    assert value(m, "risk_order_checks_total", result="approved", reason="none") == 1
    labels = {"result": "denied", "reason": "insufficient_margin"}
    assert value(m, "risk_order_checks_total", **labels) == 2
    assert value(m, "risk_order_checks_total", result="denied", reason="other") == 1
    assert value(m, "risk_order_check_duration_seconds_count") == 4
    assert value(m, "risk_order_check_duration_seconds_bucket", le="2.5e-05") == 2


def test_events_and_invalid_events_when_counted_then_stay_in_closed_sets() -> None:
    m = Metrics()
    m.event("positions.update")
    m.event("fills.confirmed", "duplicate")
    m.event("market.tick.BTCUSDT")
    m.invalid_event("pnl.update", "wrong_type")
    m.invalid_event("market.tick", "something_new")
    assert value(m, "risk_events_total", kind="positions.update") == 1
    assert value(m, "risk_events_total", kind="fills.confirmed") == 1
    assert value(m, "risk_events_total", kind="other") == 1
    labels = {"kind": "fills.confirmed", "result": "duplicate"}
    assert value(m, "risk_events_ignored_total", **labels) == 1
    assert value(m, "risk_events_invalid_total", kind="pnl.update", reason="wrong_type") == 1
    assert value(m, "risk_events_invalid_total", kind="market.tick", reason="other") == 1


def test_events_when_a_batch_counted_at_once_then_same_series_as_one_by_one() -> None:
    m = Metrics()
    m.events("market.tick", 256)
    m.event("market.tick")
    m.events("market.tick.BTCUSDT", 3)
    assert value(m, "risk_events_total", kind="market.tick") == 257
    assert value(m, "risk_events_total", kind="other") == 3


def test_monitor_counters_and_gauges_when_set_then_exposed() -> None:
    m = Metrics()
    m.violation(PolicyType.EMERGENCY, "monitor")
    m.alert(AlertLevel.CRITICAL)
    m.alert_deduplicated(3)
    m.breaker_trip()
    m.reconnect()
    m.persist_failure(2)
    m.set_gauges(
        accounts=7, halted=1, stale_marks=2, global_state=TradingState.REDUCING,
        persist_queue_depth=42, state_confirmed=True, risk_levels={"LOW": 5, "BREACHED": 2},
    )  # fmt: skip
    labels = {"policy_type": "emergency", "source": "monitor"}
    assert value(m, "risk_violations_total", **labels) == 1
    assert value(m, "risk_alerts_published_total", level="critical") == 1
    assert value(m, "risk_alerts_deduplicated_total") == 3
    assert value(m, "risk_circuit_breaker_trips_total") == 1
    assert value(m, "risk_nats_reconnects_total") == 1
    assert value(m, "risk_persist_failures_total") == 2
    assert value(m, "risk_accounts") == 7
    assert value(m, "risk_accounts_halted") == 1
    assert value(m, "risk_stale_marks") == 2
    assert value(m, "risk_trading_state_global") == 1
    assert value(m, "risk_persist_queue_depth") == 42
    assert value(m, "risk_trading_state_confirmed") == 1
    assert value(m, "risk_accounts_by_risk_level", level="LOW") == 5
    assert value(m, "risk_accounts_by_risk_level", level="MEDIUM") == 0
    assert value(m, "risk_accounts_by_risk_level", level="BREACHED") == 2
    m.set_gauges(
        accounts=7, halted=1, stale_marks=0, global_state=TradingState.HALTED,
        persist_queue_depth=0, state_confirmed=False, risk_levels={"HIGH": 7},
    )  # fmt: skip
    assert value(m, "risk_trading_state_global") == 2
    assert value(m, "risk_trading_state_confirmed") == 0
    assert value(m, "risk_accounts_by_risk_level", level="LOW") == 0
    assert value(m, "risk_accounts_by_risk_level", level="HIGH") == 7


def test_trips_when_counted_then_by_source_and_scope_in_closed_sets() -> None:
    m = Metrics()
    for source in StateSource:
        for scope in ("account", "strategy"):
            assert value(m, "risk_trips_total", source=source.value, scope=scope) == 0
    assert value(m, "risk_trading_state_confirmed") == 0  # unconfirmed until the first pass
    m.trip("policy", "strategy")
    m.trip("circuit_breaker", "account")
    m.trip("something_new", "account")
    assert value(m, "risk_trips_total", source="policy", scope="strategy") == 1
    assert value(m, "risk_trips_total", source="circuit_breaker", scope="account") == 1
    assert value(m, "risk_trips_total", source="other", scope="account") == 1


def test_check_path_cost_is_printed_as_a_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    m = Metrics()
    n = 20_000
    started = time.perf_counter_ns()
    for _ in range(n):
        m.check(DenyReason.POLICY_VIOLATION, 0.00004)
    per_check = (time.perf_counter_ns() - started) / n
    with capsys.disabled():
        print(f"\nMetrics.check: {per_check:.0f} ns per call over {n} calls")
    labels = {"result": "denied", "reason": "policy_violation"}
    assert value(m, "risk_order_checks_total", **labels) == n
