"""``risk-worker bench`` at a tiny size: every figure is present and the checks were verified."""

from __future__ import annotations

from typing import Any

from risk_worker.bench.runner import BenchConfig, figure_keys, run_bench


async def test_bench_reports_every_figure_and_verifies_the_worker() -> None:
    cfg = BenchConfig(accounts=20, positions=3, requests=200, inflight=(8,), rounds=1)
    steps: list[str] = []

    result: dict[str, Any] = await run_bench(cfg, steps.append)

    assert steps == ["round 1/1 A: floor", "round 1/1 B: worker"]
    for side in ("floor", "worker", "ratios"):
        assert set(result[side]) == set(figure_keys((8,)))
        assert all(value > 0 for value in result[side].values())
    assert result["verified"] is True
    # warm-up is not counted: one sequential phase and one at 8 in flight, 200 each
    assert result["checks_verified"] == 400
    assert result["worker_peak_rss_mb"] > 0
    assert 0 < result["worker_start_to_serving_s"] <= result["worker_start_to_ready_s"]
    assert result["reply_bytes"]["floor"] > 0 and result["reply_bytes"]["worker"] > 0
    assert result["ticks"] == "not measured in this version"
