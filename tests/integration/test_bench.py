"""``risk-worker bench`` at a tiny size: every figure is present and the checks were verified
(also with ``--var``: historical VaR computed on every check)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from risk_worker.bench.config import BenchConfig
from risk_worker.bench.runner import run_bench, steps_total
from risk_worker.bench.summary import cpu_keys, figure_keys

TARGETS = {
    "sequential p50 ≤ 1.10 × floor",
    "sequential p99 ≤ 1.25 × floor",
    "in-process decision p50 ≤ 5 µs",
    "in-process answer p50 ≤ 8 µs",
    "ticks absorbed ≥ 200,000/s",
    "worker peak RSS ≤ 200 MB",
    "start to ready ≤ 2 s",
}


async def test_bench_reports_every_figure_and_verifies_the_worker() -> None:
    cfg = BenchConfig(
        accounts=20,
        positions=3,
        requests=200,
        inflight=(8,),
        rounds=1,
        tick_rate=1000.0,
        tick_rates=(2000.0, 4000.0),
        tick_seconds=0.5,
    )
    steps: list[str] = []

    result: dict[str, Any] = await run_bench(cfg, steps.append)

    assert steps[:3] == ["in-process check path", "round 1/1 A: floor", "round 1/1 B: worker"]
    assert steps[3:] == ["tick ingestion: 2,000 ticks/s", "tick ingestion: 4,000 ticks/s"]
    assert len(steps) <= steps_total(cfg)
    for side in ("floor", "worker", "ratios"):
        assert set(result[side]) == set(figure_keys((8,)))
        assert all(value > 0 for value in result[side].values())
    assert result["verified"] is True
    # warm-up is not counted: sequential, 8 in flight and idle phases, 200 each
    assert result["checks_verified"] == 600
    assert result["inprocess"]["decide_p50_us"] > 0
    for side in ("floor", "worker"):  # 10 ms clock ticks: a short phase may read 0
        assert set(result["cpu_us_per_request"][side]) == set(cpu_keys((8,)))
        assert all(v >= 0 for v in result["cpu_us_per_request"][side].values())
    ingestion = result["ingestion"]
    assert ingestion["max_absorbed_rate"] == 4000.0, ingestion
    assert [s["rate"] for s in ingestion["steps"]] == [2000.0, 4000.0]
    ticks = result["ticks_during_rounds"]
    assert ticks["published"] > 0 and ticks["applied"] >= ticks["published"]
    assert result["worker_peak_rss_mb"] > 0
    assert 0 < result["worker_start_to_ready_s"] <= result["worker_start_to_book_loaded_s"]
    assert result["reply_bytes"]["floor"] > 0 and result["reply_bytes"]["worker"] > 0
    assert {t["target"] for t in result["targets"]} == TARGETS
    assert all(t["met"] or t["missed_by"] is not None for t in result["targets"])


TINY_ARGS = (
    "--accounts=20",
    "--positions=3",
    "--requests=200",
    "--inflight=8",
    "--rounds=1",
    "--tick-rate=1000",
    "--tick-rates=2000",
    "--tick-seconds=0.5",
)


async def test_bench_with_var_computes_the_var_on_every_check() -> None:
    """``risk-worker bench --var``: the VaR policy loaded, the history seeded in the worker's
    Redis, every approval carrying a post-trade VaR (else the run fails), VaR said to be on."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "risk_worker",
        "bench",
        "--var",
        *TINY_ARGS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 240.0)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "VaR on: Max VaR 99: var_99_fraction ≤ 1 (hard); 3 symbols × 1,440 samples" in text
    assert "15 policies with VaR" in text  # the in-process phase ran with it too
    assert (
        "verified: 600 worker replies carried the expected decision (approved, every approval "
        "with its post-trade 99 % VaR" in text
    ), text


async def test_run_bench_var_result_names_the_var_setup() -> None:
    cfg = BenchConfig(
        accounts=10,
        positions=2,
        requests=100,
        inflight=(4,),
        rounds=1,
        tick_rate=500.0,
        tick_rates=(1000.0,),
        tick_seconds=0.5,
        inprocess=False,
        var=True,
    )

    result: dict[str, Any] = await run_bench(cfg)

    assert result["verified"] is True and result["checks_verified"] == 300
    assert result["var"]["samples_per_symbol"] == 1440 and result["var"]["symbols"] == 2
    assert result["policies"].startswith("15 ")
