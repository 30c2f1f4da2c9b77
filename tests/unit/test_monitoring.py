"""The monitoring files: docker/prometheus/alerts.yml and the Grafana dashboard name only metrics
the worker exports, with labels and label values it can emit; the compose `monitoring` profile
loads them. No Prometheus or Grafana runs here: the metric names come from a real
:class:`Metrics` registry in process, the queries are read with a small PromQL scanner, and
``promtool`` (Debian package ``prometheus``) checks and unit-tests the rules when installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from risk_worker.service.observability import Metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "docker" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
GRAFANA_DIR = ROOT / "docker" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "risk-worker.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "risk-worker.yml"

TARGET_LABELS = {"job", "instance"}
"""Labels Prometheus adds to every scraped series."""

KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}

_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_WORD = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")

Selector = tuple[str, str, str, str]
"""(metric, label, operator, value) of one label matcher."""


def exported() -> dict[str, dict[str, set[str]]]:
    """``{sample name: {label: values}}`` of a fresh worker registry (every known combination
    is created at zero, so the values are the closed sets), plus ``up``."""
    names: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for family in Metrics().registry.collect():
        for sample in family.samples:
            labels = names[sample.name]
            for key, value in sample.labels.items():
                labels[key].add(value)
    names["up"]  # a series of every target, labels job and instance only
    return names


def scan(expr: str) -> tuple[set[str], list[Selector]]:
    """The metric names a PromQL expression reads, and its label matchers.

    Grafana's ``$variables`` are dropped first. A matcher inside ``{...}`` is attributed to the
    metric name right before the brace.
    """
    expr = _VARIABLE.sub("", expr)
    matchers = [
        (metric or "", label, op, value)
        for metric, body in _SELECTOR.findall(expr)
        for label, op, value in _MATCHER.findall(body)
    ]
    bare = _STRING.sub("", _SELECTOR.sub(lambda m: m.group(1) or "", expr))
    bare = _RANGE.sub("", _GROUPING.sub("", bare))
    bare = re.sub(r"\boffset\s+\w+", "", bare)
    names = {w for w in _WORD.findall(bare) if w.lower() not in KEYWORDS}
    return names, matchers


def problems(expr: str, metrics: dict[str, dict[str, set[str]]]) -> list[str]:
    """What in ``expr`` the worker does not export: unknown metrics, labels or label values."""
    names, matchers = scan(expr)
    found = [f"unknown metric {n}" for n in sorted(names - set(metrics))]
    if not names:
        found.append("no metric")
    for metric, label, op, value in matchers:
        labels = metrics.get(metric)
        if labels is None:
            continue  # reported above
        if label not in labels and label not in TARGET_LABELS:
            found.append(f"{metric} has no label {label}")
        elif metric == "up" and label == "job" and value != "risk-worker":
            found.append(f"up{{job={value!r}}}: the worker's scrape job is risk-worker")
        elif label in labels and op in {"=", "=~"}:
            alternatives = value.split("|") if op == "=~" else [value]
            if all(re.fullmatch(r"[\w.]+", a) for a in alternatives):
                found += [
                    f"{metric}{{{label}={a!r}}} is never exported"
                    for a in alternatives
                    if a not in labels[label]
                ]
    return found


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of every panel, rows' nested panels included."""
    out = []
    for panel in board["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            out += [(inner["title"], t["expr"]) for t in inner.get("targets", [])]
    return out


# -- the scanner itself ---------------------------------------------------------------------------


def test_scan_finds_metrics_not_functions_labels_or_durations() -> None:
    names, matchers = scan(
        "histogram_quantile(0.99, sum by (instance, le) (rate(risk_order_check_duration_seconds"
        '_bucket{instance=~"$instance"}[$__rate_interval]))) > 1e-3 and on (instance) up == 1'
    )
    assert names == {"risk_order_check_duration_seconds_bucket", "up"}
    assert matchers == [("risk_order_check_duration_seconds_bucket", "instance", "=~", "")]


def test_problems_when_a_name_label_or_value_is_wrong_then_reported() -> None:
    metrics = exported()
    assert problems('rate(risk_order_checks_total{result="denied"}[5m])', metrics) == []
    assert problems("rate(risk_order_check_total[5m])", metrics) == [
        "unknown metric risk_order_check_total"
    ]
    assert problems('risk_order_checks_total{decision="denied"}', metrics) == [
        "risk_order_checks_total has no label decision"
    ]
    assert problems('risk_events_ignored_total{result="suspekt"}', metrics) == [
        "risk_events_ignored_total{result='suspekt'} is never exported"
    ]
    assert problems('up{job="worker"}', metrics) != []


# -- docker/prometheus/alerts.yml -----------------------------------------------------------------


def test_every_alert_expression_names_only_exported_metrics() -> None:
    metrics = exported()
    rules = alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        assert not problems(rule["expr"], metrics), (rule["alert"], problems(rule["expr"], metrics))


def test_alerts_cover_what_an_operator_must_hear_about() -> None:
    used: set[str] = set()
    for rule in alert_rules():
        used |= scan(rule["expr"])[0]
    assert {
        "up",
        "risk_trading_state_confirmed",
        "risk_persist_queue_depth",
        "risk_persist_failures_total",
        "risk_order_check_duration_seconds_bucket",
        "risk_trips_total",
        "risk_trading_state_global",
        "risk_accounts_halted",
    } <= used


def test_every_alert_has_a_severity_a_summary_and_a_runbook_line_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    monitor = readme.split("## Monitor", 1)[1].split("\n## ", 1)[0]
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["runbook"] == f"README.md#monitor: {name}"
        assert f"`{name}`" in monitor, f"README Monitor has no runbook line for {name}"


def test_p99_alert_reads_the_check_histogram_with_histogram_quantile() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "RiskCheckLatencyP99High"]
    assert "histogram_quantile(0.99," in rule["expr"]
    assert "risk_order_check_duration_seconds_bucket" in rule["expr"]


# -- the Grafana dashboard and its provisioning ---------------------------------------------------


def test_every_dashboard_query_names_only_exported_metrics() -> None:
    metrics = exported()
    queries = panel_queries(dashboard())
    assert len(queries) >= 15
    for title, expr in queries:
        assert not problems(expr, metrics), (title, expr, problems(expr, metrics))


def test_dashboard_variables_read_exported_metrics() -> None:
    metrics = exported()
    for variable in dashboard()["templating"]["list"]:
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", text)
        assert match, text
        assert not problems(match.group(1), metrics), text
        assert match.group(2) in TARGET_LABELS


def test_dashboard_shows_checks_latency_accounts_trips_backlog_reconnects_and_ticks() -> None:
    exprs = [expr for _, expr in panel_queries(dashboard())]
    used = set().union(*(scan(e)[0] for e in exprs))
    assert {
        "risk_order_checks_total",
        "risk_order_check_duration_seconds_bucket",
        "risk_accounts_by_risk_level",
        "risk_trips_total",
        "risk_persist_queue_depth",
        "risk_nats_reconnects_total",
        "risk_events_ignored_total",
        "risk_trading_state_confirmed",
        "up",
    } <= used
    quantiles = [e for e in exprs if e.startswith("histogram_quantile(")]
    assert {e.split(",")[0] for e in quantiles} >= {
        "histogram_quantile(0.5",
        "histogram_quantile(0.99",
    }
    assert any("by (result)" in e and "risk_order_checks_total" in e for e in exprs)
    assert any("by (reason)" in e and "risk_order_checks_total" in e for e in exprs)


def test_dashboard_panels_use_the_provisioned_datasource_and_do_not_overlap() -> None:
    (source,) = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    board = dashboard()
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_provider_loads_the_mounted_dashboards(
    services: dict[str, dict[str, Any]],
) -> None:
    (provider,) = yaml.safe_load(PROVIDERS.read_text(encoding="utf-8"))["providers"]
    grafana = services["grafana"]
    assert grafana["profiles"] == ["monitoring"]
    assert f"./docker/grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    assert "./docker/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert grafana["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    env = grafana["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env


# -- compose wiring and promtool ------------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def test_prometheus_loads_the_alert_rules(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]  # beside prometheus.yml, in /etc/prometheus
    assert (
        "./docker/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro"
        in services["prometheus"]["volumes"]
    )


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)"
)


@needs_promtool
@pytest.mark.parametrize(
    "args",
    [
        ["check", "rules", str(ALERTS)],
        ["check", "config", str(PROMETHEUS_DIR / "prometheus.yml")],
        ["test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml")],
    ],
    ids=["check-rules", "check-config", "test-rules"],
)
def test_promtool_accepts_the_files(args: list[str]) -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, check=False, cwd=PROMETHEUS_DIR
    )
    assert result.returncode == 0, result.stdout + result.stderr
