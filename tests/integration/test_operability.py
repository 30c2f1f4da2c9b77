"""What an SRE sees: /metrics that match what happened, /ready that tells the truth."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from risk_worker import _core
from risk_worker.devstack.nats_server import NatsServer
from tests.harness import Harness
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def scrape(h: Harness) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    assert h.worker.http is not None
    status, text = await asyncio.to_thread(get, h.worker.http.port, "/metrics")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_when_scripted_scenario_then_counters_match_what_happened(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(margin_rates={"BTCUSDT": 0.02})
    account = f"OPS-{uuid.uuid4().hex[:6]}"
    await h.pnl(account, 100_000.0)
    await h.position(account, "ETHUSDT", 10.0, 3_000.0)
    await h.tick("BTCUSDT", 50_000.0)
    await h.tick("ETHUSDT", 3_000.0)
    await h.publish("pnl.update", b"not json")
    await h.settle()
    replies: list[dict[str, Any]] = []
    for qty in (0.1, 0.2):
        replies.append(await h.check(account, "BTCUSDT", "BUY", qty, 50_000.0, dry_run=True))
    # 1M notional (10 × equity: within Max Order Size) on top of 30k of ETH: leverage 10.3
    replies.append(await h.check(account, "BTCUSDT", "BUY", 20.0, 50_000.0))  # policy
    # 990k of ETH at 10 % margin: 99k + 3k > 100k, and 9.9 × equity (within the size limit)
    replies.append(await h.check(account, "ETHUSDT", "BUY", 330.0, 3_000.0))  # margin
    replies.append(await h.check("NOBODY", "BTCUSDT", "BUY", 1.0, 50_000.0))
    await h.request(b"{")
    assert [r["rejection_reason"] for r in replies] == [
        None,
        None,
        "policy_violation",
        "insufficient_margin",
        "unknown_account",
    ]
    await h.tick("ETHUSDT", 2_770.0)  # equity 97.7k → drawdown 2.3 %: no alert
    await h.tick("ETHUSDT", 2_200.0)  # equity 92k: 8 % (a step under RISK_TICK_MAX_JUMP)
    await h.tick("ETHUSDT", 1_700.0)  # equity 87k: drawdown 13 % > 10 % warning
    await h.settle()
    # two warnings: the daily drawdown (13 % > 10 %) and the rapid one (> 5 % within 300 s)

    async def alerted() -> bool:
        return value(await scrape(h), "risk_alerts_published_total", level="warning") >= 2

    await wait_for(alerted, 5.0, 0.05, "no warning alert counted")
    m = await scrape(h)
    checks = "risk_order_checks_total"
    assert value(m, checks, result="approved", reason="none") == 2
    assert value(m, checks, result="denied", reason="policy_violation") == 1
    assert value(m, checks, result="denied", reason="insufficient_margin") == 1
    assert value(m, checks, result="denied", reason="unknown_account") == 1
    assert value(m, checks, result="denied", reason="invalid_request") == 1
    assert value(m, "risk_order_check_duration_seconds_count") == 6
    assert value(m, "risk_violations_total", policy_type="hard", source="pre_trade") == 1
    assert value(m, "risk_violations_total", policy_type="soft", source="monitor") == 2
    assert value(m, "risk_alerts_published_total", level="warning") == 2
    assert value(m, "risk_alerts_published_total", level="critical") == 0
    assert value(m, "risk_events_invalid_total", kind="pnl.update", reason="malformed_json") == 1
    assert value(m, "risk_events_total", kind="pnl.update") == 1
    assert value(m, "risk_events_total", kind="positions.update") == 1
    assert value(m, "risk_events_total", kind="market.tick") == 5
    assert value(m, "risk_accounts") == 1
    assert value(m, "risk_trading_state_global") == 0


async def test_ready_when_nats_dies_then_503_naming_it_and_200_after_health_stays_200(
    own_nats_server: NatsServer, harness_factory: HarnessFactory
) -> None:
    h = await harness_factory(url=own_nats_server.url)
    assert h.worker.http is not None
    port = h.worker.http.port

    async def ready(expected: int) -> bool:
        status, _body = await asyncio.to_thread(get, port, "/ready")
        return status == expected

    await wait_for(lambda: ready(200), 5.0, 0.05, "never ready")
    _, body = await asyncio.to_thread(get, port, "/ready")
    assert json.loads(body)["checks"]["redis"] == "disabled"
    assert json.loads(body)["checks"]["decision_core"] == _core.STATUS.active
    own_nats_server.kill()
    await wait_for(lambda: ready(503), 10.0, 0.1, "/ready stayed 200 without NATS")
    _status, body = await asyncio.to_thread(get, port, "/ready")
    assert "nats" in json.loads(body)["missing"]
    assert (await asyncio.to_thread(get, port, "/health"))[0] == 200
    own_nats_server.restart()
    await wait_for(lambda: ready(200), 15.0, 0.1, "/ready did not recover")
    assert (await asyncio.to_thread(get, port, "/health"))[0] == 200
