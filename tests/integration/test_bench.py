"""``risk-worker bench`` at a tiny size: every figure is present and the checks were verified
(also with ``--var``: historical VaR computed on every check; with ``--instances 2``: two
workers, the forwarded fraction and the forwarding hop)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from rich.console import Console

from risk_worker.bench.config import BenchConfig
from risk_worker.bench.report import render
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
    for side in ("floor", "worker"):  # CPU with ticks flowing and no checks, cores
        assert set(result["background_cpu_cores"][side]) == {"responder", "server", "client"}
    inst = result["instances"]  # one instance: decides everything, forwards nothing
    assert inst["ids"] == ["bench-worker"] and inst["decided"][0] >= 600 and inst["hop"] is None
    assert inst["forwarded_fraction"] == {"seq": 0.0, "c8": 0.0, "idle": 0.0}
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


async def test_bench_with_two_instances_spreads_forwards_and_measures_the_hop() -> None:
    """``--instances 2``: both workers decide checks (each its accounts), every reply verified,
    about half the checks forwarded to the owner, every tick applied by both, the hop measured."""
    cfg = BenchConfig(
        accounts=20,
        positions=3,
        requests=200,
        inflight=(8,),
        rounds=1,
        tick_rate=1000.0,
        tick_rates=(2000.0,),
        tick_seconds=0.5,
        inprocess=False,
        instances=2,
    )

    result: dict[str, Any] = await run_bench(cfg)

    assert result["verified"] is True and result["checks_verified"] == 600
    inst = result["instances"]
    assert inst["count"] == 2 and inst["ids"] == ["bench-worker-1", "bench-worker-2"]
    assert all(n > 0 for n in inst["decided"]), inst  # both workers answered
    assert sum(inst["decided"]) >= 600  # plus warm-up and the reply-size probe
    assert set(inst["forwarded_fraction"]) == {"seq", "c8", "idle"}
    assert all(0.2 < f < 0.8 for f in inst["forwarded_fraction"].values()), inst
    hop = inst["hop"]
    assert hop["hop_forwarded_n"] + hop["hop_local_n"] == 200
    assert 0.2 < hop["hop_forwarded"] < 0.8
    assert hop["hop_forwarded_p50_us"] > 0 and hop["hop_local_p50_us"] > 0
    assert "hop_cost_p50_us" in hop
    ticks = result["ticks_during_rounds"]  # the fewest any instance applied
    assert ticks["published"] > 0 and ticks["applied"] >= ticks["published"]
    console = Console(record=True, width=400)  # no line wrapped
    render(result, console)
    text = console.export_text()
    assert "2 workers (bench-worker-1, bench-worker-2): CPU per check summed" in text
    assert "forwarding hop (sequential, no ticks" in text and "the hop costs" in text
