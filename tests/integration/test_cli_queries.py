"""``risk-worker metrics`` and ``risk-worker check --file``: real processes, real NATS."""

from __future__ import annotations

import json
from pathlib import Path

from risk_worker.domain.policies import Policy, default_policies
from risk_worker.domain.types import Metric, Operator, PolicyType
from tests.integration.conftest import HarnessFactory
from tests.integration.test_cli import cli

GROSS_50K = Policy(
    "id-gross", "Gross Cap", PolicyType.HARD, Metric.GROSS_EXPOSURE, Operator.LTE, 50_000.0
)


async def test_cli_metrics_when_known_unknown_or_invalid_then_table_exit_0_1_2(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory()
    await h.pnl("CLIM", 100_000.0)
    await h.settle()
    url = h.settings.nats_url
    shown = await cli(url, "metrics", "CLIM")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "100,000.00" in shown.stdout and "drawdown (window)" in shown.stdout
    as_json = await cli(url, "metrics", "CLIM", "--json")
    assert json.loads(as_json.stdout)["equity"] == 100_000.0
    unknown = await cli(url, "metrics", "NOBODY")
    assert unknown.returncode == 1 and "unknown_account" in unknown.stderr
    invalid = await cli(url, "metrics", "BAD ID")
    assert invalid.returncode == 2 and "account_id" in invalid.stderr


async def test_cli_check_file_when_basket_then_partly_denied_and_all_or_none_reserves_nothing(
    harness_factory: HarnessFactory, tmp_path: Path
) -> None:
    h = await harness_factory(policies=[*default_policies(), GROSS_50K])
    await h.pnl("CLIB", 100_000.0)
    await h.tick("BTCUSDT", 1_000.0)
    await h.settle()
    url = h.settings.nats_url
    order = {"account_id": "CLIB", "symbol": "BTCUSDT", "side": "BUY", "price": 1_000.0}
    path = tmp_path / "orders.json"
    path.write_text(json.dumps([{**order, "quantity": q} for q in (30, 15, 10)]))
    whole = await cli(url, "check", "--file", str(path), "--all-or-none")
    assert whole.returncode == 1, whole.stdout + whole.stderr
    assert whole.stdout.count("batch_denied") == 2 and "0 of 3 (all or none)" in whole.stdout
    assert len(h.worker.engine.book.accounts["CLIB"].pending) == 0
    partly = await cli(url, "check", "--file", str(path))
    assert partly.returncode == 1
    assert "policy_violation" in partly.stdout and "2 of 3" in partly.stdout
    assert len(h.worker.engine.book.accounts["CLIB"].pending) == 2
    path.write_text("[]")
    empty = await cli(url, "check", "--file", str(path))
    assert empty.returncode == 2
    usage = await cli(url, "check", "--account", "CLIB")
    assert usage.returncode == 2 and "--file" in usage.stderr
