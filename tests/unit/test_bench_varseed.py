"""``bench --var``'s seeded history: a full window per symbol, continuous with the bench marks,
and an engine seeded with it computes the VaR of every check."""

from __future__ import annotations

from pathlib import Path

import pytest

from risk_worker.bench.core import MAX_REQUEST_BYTES, build_engine, mark_price, request_bodies
from risk_worker.bench.load import write_policy_file
from risk_worker.bench.procs import worker_env
from risk_worker.bench.varseed import (
    VAR_CONFIG,
    VAR_POLICY_NAME,
    seed_engine,
    seeded_samples,
    var_policy,
)
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.var_result import VarConfig
from risk_worker.wire import check_request

NOW_MS = 1_764_590_000_123


def test_seeded_samples_fill_the_window_up_to_the_latest_boundary() -> None:
    samples = seeded_samples(3, now_ms=NOW_MS)
    step = VAR_CONFIG.sample_interval_ms
    assert sorted(samples) == ["SYM000", "SYM001", "SYM002"]
    for j, rows in enumerate(samples.values()):
        boundaries = [b for b, _ in rows]
        assert len(rows) == VAR_CONFIG.window > VAR_CONFIG.min_samples
        assert boundaries[-1] == NOW_MS // step * step
        assert boundaries == list(range(boundaries[0], boundaries[-1] + 1, step))
        assert rows[-1][1] == mark_price(j)  # the live marks continue the walk
        assert all(price > 0 for _, price in rows)
    assert seeded_samples(3, now_ms=NOW_MS) == samples  # fixed seed


def test_seeded_engine_computes_the_var_of_every_check() -> None:
    engine = build_engine(accounts=5, positions=4)
    seed_engine(engine, 4)
    assert engine.policies is not None and len(engine.policies) == 15
    assert engine.policies.uses_var
    assert any(p.name == VAR_POLICY_NAME for p in engine.policies.policies)
    for body in request_bodies(40, accounts=5, positions=4):
        order = check_request.parse_check(body, MAX_REQUEST_BYTES)
        decision = engine.check(order, order.timestamp or 0, True)
        assert decision.approved, decision.message
        assert decision.metrics is not None and decision.metrics.var is not None
        assert decision.metrics.var.var_99 is not None
        assert decision.metrics.var.scenarios == VAR_CONFIG.window - 1


def test_seed_engine_refuses_another_interval() -> None:
    engine = RiskEngine(RiskConfig(var=VarConfig(sample_interval_ms=1_000)))
    with pytest.raises(ValueError, match="interval"):
        seed_engine(engine, 2)


def test_worker_gets_the_var_policy_redis_and_settings(tmp_path: Path) -> None:
    text = write_policy_file(tmp_path / "p.toml", [var_policy()]).read_text()
    assert 'metric = "var_99_fraction"' in text and text.count("[[policy]]") == 15
    env = worker_env("nats://x", tmp_path / "p.toml", 1, "redis://127.0.0.1:1/0")
    assert env["RISK_REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert env["RISK_VAR_WINDOW"] == "1440" and env["RISK_VAR_SAMPLE_INTERVAL"] == "60"
    assert "RISK_REDIS_URL" not in worker_env("nats://x", tmp_path / "p.toml", 1)
