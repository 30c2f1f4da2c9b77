"""The bench's result: medians over rounds, ratios worker/floor, and each target met or missed.

Targets are issue 16's, from one run on a 2-core machine (ticks flowing): sequential p50 ≤ 1.10 ×
floor and p99 ≤ 1.25 × floor, throughput at 64 and 128 in flight ≥ 0.85 × floor, in-process
decision ≤ 5 µs and answer ≤ 8 µs p50, ≥ 200,000 ticks/s absorbed, ≤ 200 MB peak RSS, start to
ready ≤ 2 s.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from risk_worker.bench.core import build_engine, measure, request_bodies
from risk_worker.bench.fleet import worker_ids
from risk_worker.bench.varseed import seed_engine, var_summary

if TYPE_CHECKING:
    from risk_worker.bench.config import BenchConfig

INPROCESS_REQUESTS = 5_000
INPROCESS_STAGES = ("answer", "decode", "decide", "encode")


def figure_keys(inflight: tuple[int, ...]) -> list[str]:
    """Keys of one side's figures: ``seq_*`` (ticks flowing), ``c<K>_*`` per level, ``idle_*``."""
    keys = ["seq_p50_us", "seq_p99_us", "seq_rps"]
    for k in inflight:
        keys += [f"c{k}_rps", f"c{k}_p50_us", f"c{k}_p99_us"]
    return [*keys, "idle_p50_us", "idle_p99_us", "idle_rps"]


CPU_PROCESSES = ("responder", "server", "client")


def cpu_keys(inflight: tuple[int, ...]) -> list[str]:
    """Keys of the CPU µs per request of each process in each phase."""
    return [f"{phase}_cpu_{name}_us" for phase in phases(inflight) for name in CPU_PROCESSES]


def phases(inflight: tuple[int, ...]) -> list[str]:
    """The measured phases in order: ``seq``, ``c<K>`` per level, ``idle``."""
    return ["seq", *(f"c{k}" for k in inflight), "idle"]


HOP_KEYS = ("n", "p50_us", "p90_us", "mean_us")


def scale_out(cfg: BenchConfig, worker: list[dict[str, float]]) -> dict[str, Any]:
    """The instances' part of the result: ids, checks each decided (summed over rounds), the
    fraction forwarded per phase and the forwarding hop (medians over rounds; None at N = 1)."""
    ids = worker_ids(cfg.instances)
    hop: dict[str, float] | None = None
    if cfg.instances > 1:
        keys = [f"hop_{kind}_{k}" for kind in ("forwarded", "local") for k in HOP_KEYS]
        keys += ["hop_forwarded", "hop_cost_p50_us", "hop_cost_mean_us"]
        hop = {
            k: statistics.median(r[k] for r in worker if k in r)
            for k in keys
            if any(k in r for r in worker)
        }
    return {
        "count": cfg.instances,
        "ids": list(ids),
        "decided": [sum(r[f"decided_{i}"] for r in worker) for i in range(len(ids))],
        "forwarded_fraction": {
            p: statistics.median(r[f"{p}_forwarded"] for r in worker) for p in phases(cfg.inflight)
        },
        "start_to_converged_s": statistics.median(r["start_to_converged_s"] for r in worker),
        "hop": hop,
    }


def inprocess_figures(accounts: int, positions: int, var: bool = False) -> dict[str, float]:
    """p50/p99 (µs) of each in-process stage on the bench's book and 14 policies (2 passes);
    with ``var`` also the VaR policy and a seeded history (:func:`.varseed.seed_engine`)."""
    engine = build_engine(accounts, positions, policies=14)
    if var:
        seed_engine(engine, positions)
    detail = "full" if var else None  # as the NATS phases ask
    bodies = request_bodies(INPROCESS_REQUESTS, accounts, positions, detail=detail)
    figures = measure(engine, bodies, repeat=2, full=var)
    return {
        f"{stage}_{q}_us": figures[f"{stage}_{q}_us"]
        for stage in INPROCESS_STAGES
        for q in ("p50", "p99")
    }


def _target(name: str, value: float | None, limit: float, upper: bool, unit: str) -> dict[str, Any]:
    """One target: met, or missed by how much (absolute and as a fraction of the limit)."""
    if value is None:
        return {"target": name, "value": None, "limit": limit, "met": False, "missed_by": None}
    met = value <= limit if upper else value >= limit
    gap = 0.0 if met else abs(value - limit)
    return {
        "target": name,
        "value": value,
        "limit": limit,
        "unit": unit,
        "met": met,
        "missed_by": gap,
        "missed_by_fraction": gap / limit if limit else 0.0,
    }


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Evaluate issue 16's targets on a summarized result (absent figures count as missed).

    Issue 16: throughput at 64 and 128 in flight ≥ 0.85 × the floor, sequential p50 ≤ 1.10 ×
    and p99 ≤ 1.25 ×, in-process decision ≤ 5 µs and answer ≤ 8 µs p50, and issue 6's
    ticks (raised to ≥ 200,000/s absorbed, the figure issue 6 reached), RSS and start held.
    """
    ratios = result["ratios"]
    out = [
        _target("sequential p50 ≤ 1.10 × floor", ratios.get("seq_p50_us"), 1.10, True, "×"),
        _target("sequential p99 ≤ 1.25 × floor", ratios.get("seq_p99_us"), 1.25, True, "×"),
    ]
    for k in (64, 128):
        key = f"c{k}_rps"
        if key in ratios:
            out.append(
                _target(f"{k} in flight throughput ≥ 0.85 × floor", ratios[key], 0.85, False, "×")
            )
    inproc = result.get("inprocess") or {}
    out += [
        _target("in-process decision p50 ≤ 5 µs", inproc.get("decide_p50_us"), 5.0, True, "µs"),
        _target("in-process answer p50 ≤ 8 µs", inproc.get("answer_p50_us"), 8.0, True, "µs"),
        _target(
            "ticks absorbed ≥ 200,000/s",
            result["ingestion"]["max_absorbed_rate"],
            200_000.0,
            False,
            "ticks/s",
        ),
        _target("worker peak RSS ≤ 200 MB", result["worker_peak_rss_mb"], 200.0, True, "MiB"),
        _target("start to ready ≤ 2 s", result["worker_start_to_ready_s"], 2.0, True, "s"),
    ]
    return out


def summarize(
    cfg: BenchConfig,
    floor: list[dict[str, float]],
    worker: list[dict[str, float]],
    ingestion: dict[str, Any],
    inprocess: dict[str, float],
) -> dict[str, Any]:
    """Medians over rounds, ratios worker/floor, start, memory, ticks, verification, targets."""
    keys = figure_keys(cfg.inflight)
    med_floor = {k: statistics.median(r[k] for r in floor) for k in keys}
    med_worker = {k: statistics.median(r[k] for r in worker) for k in keys}
    verified = sum(int(v) for r in worker for k, v in r.items() if k.endswith("_verified"))

    def median(key: str) -> float:
        return statistics.median(r[key] for r in worker)

    result: dict[str, Any] = {
        "config": asdict(cfg),
        "floor": med_floor,
        "worker": med_worker,
        "ratios": {k: med_worker[k] / med_floor[k] if med_floor[k] else 0.0 for k in keys},
        "cpu_us_per_request": {
            side: {k: statistics.median(r[k] for r in rounds) for k in cpu_keys(cfg.inflight)}
            for side, rounds in (("floor", floor), ("worker", worker))
        },
        "background_cpu_cores": {
            side: {
                name: statistics.median(r[f"bg_cpu_{name}_cores"] for r in rounds)
                for name in CPU_PROCESSES
            }
            for side, rounds in (("floor", floor), ("worker", worker))
        },
        "inprocess": inprocess,
        "ingestion": ingestion,
        "worker_peak_rss_mb": max(r["peak_rss_mb"] for r in worker),
        "worker_start_to_ready_s": median("start_to_ready_s"),
        "worker_start_to_serving_s": median("start_to_serving_s"),
        "worker_start_to_book_loaded_s": median("start_to_book_loaded_s"),
        "ticks_during_rounds": {
            "rate": cfg.tick_rate,
            "published": sum(r["ticks_published"] for r in worker),
            "applied": sum(r["ticks_applied"] for r in worker),
        },
        "reply_bytes": {"floor": floor[0]["reply_bytes"], "worker": worker[0]["reply_bytes"]},
        "checks_verified": verified,
        "verified": verified > 0,
        "policies": (
            "15 (the bench's policy file with a VaR policy, RISK_POLICY_FILE)"
            if cfg.var
            else "14 (the bench's policy file, RISK_POLICY_FILE)"
        ),
        "var": var_summary(cfg.positions) if cfg.var else None,
        "instances": scale_out(cfg, worker),
        "rounds": {"floor": floor, "worker": worker},
    }
    result["targets"] = targets(result)
    return result
