"""Run the bench: its own nats-server, alternating floor and worker rounds, then tick ingestion.

Round A runs the floor (:mod:`risk_worker.bench.floor`) alone, round B ``--instances`` N
``risk-worker run`` processes (one by default; :mod:`risk_worker.bench.fleet`), so only one
kind of responder is in the queue group while a round is measured. In both, the tick generator
publishes ``market.tick.*`` at ``tick_rate`` while the sequential and in-flight phases run,
then stops for an idle sequential phase. Each worker round starts fresh workers on the bench's
14 policies (``RISK_POLICY_FILE``), loads their book through real events, times their start
and checks that every instance applied every tick; with N ≥ 2 each phase also reports the
fraction of checks forwarded to the account's owner, and a last sequential phase measures the
forwarding hop (:mod:`risk_worker.bench.hop`). Figures are medians over rounds.

With ``var`` (``--var``) the policy file also holds a hard VaR policy and the workers get
an embedded Redis, seeded with a full VaR history just before they start
(:mod:`risk_worker.bench.varseed`); the in-process phase runs with the same.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from risk_worker.bench.config import BenchConfig
from risk_worker.bench.fleet import (
    START_TIMEOUT_S,
    Fleet,
    decided,
    forwarded_total,
    start_fleet,
)
from risk_worker.bench.hop import HOP_REQUESTS, hop_phase
from risk_worker.bench.ingest import applied_ticks, tick_ladder, wait_applied
from risk_worker.bench.load import (
    CHECK_SUBJECT,
    BenchError,
    bench_requests,
    publish_marks,
    wait_answering,
    write_policy_file,
)
from risk_worker.bench.measure import Counter, Plan, background_cpu, measure_all, timed_phase
from risk_worker.bench.procs import TickStream, alive, peak_rss_mb, spawn, stop
from risk_worker.bench.summary import inprocess_figures, summarize
from risk_worker.bench.varseed import var_policy, var_redis
from risk_worker.devstack.nats_server import NatsServer

DISTINCT_BODIES = 5_000


async def _phases(
    nc: Client,
    server: NatsServer,
    cfg: BenchConfig,
    plan: Plan,
    responders: Sequence[int],
    forwarded: Counter | None = None,
) -> tuple[dict[str, float], int]:
    """With ticks flowing: the responders' background CPU (no checks), then the measured
    phases; then the idle sequential phase: (figures, ticks published)."""
    pids = {"client": [os.getpid()], "server": [server.pid or 0], "responder": list(responders)}
    ticks = TickStream(server.url, cfg.positions, cfg.tick_rate)
    await ticks.start()
    try:
        figures = await background_cpu(pids, min(plan.duration or 1.0, 2.0))
        figures |= await measure_all(nc, plan, cfg.inflight, pids, forwarded)
    finally:
        published = await ticks.stop()
    await publish_marks(nc, cfg.positions)  # fresh marks for market orders while idle
    figures |= await timed_phase(nc, plan, 1, "idle", pids, forwarded)
    reply = await nc.request(CHECK_SUBJECT, plan.bodies[0], timeout=5.0)
    figures["reply_bytes"] = float(len(reply.data))
    return figures, published


async def floor_round(
    nc: Client, server: NatsServer, cfg: BenchConfig, plan: Plan, tmp: Path
) -> dict[str, float]:
    """One round A: start the floor, measure it (replies not checked), stop it."""
    log = tmp / "floor.log"
    proc = await spawn(
        [
            sys.executable,
            "-m",
            "risk_worker.bench.floor",
            server.url,
            str(cfg.positions),
            *(["full"] if cfg.var else []),  # the replies --var asks for
        ],
        dict(os.environ),
        log,
    )
    try:
        await alive(proc, log, wait_answering(nc, START_TIMEOUT_S))
        unchecked = Plan(plan.bodies, plan.order_ids, plan.requests, plan.duration, verify=False)
        figures, _ = await _phases(nc, server, cfg, unchecked, [proc.pid])
        return figures
    finally:
        await stop(proc)


async def _ticks_absorbed(fleet: Fleet, bases: Sequence[int], published: int) -> int:
    """The fewest ticks any instance applied since ``bases``.

    Raises:
        BenchError: an instance applied fewer than ``published`` within 10 s.
    """
    applied = [
        await wait_applied(port, base, published, 10.0)
        for port, base in zip(fleet.ports, bases, strict=True)
    ]
    for wid, n in zip(fleet.ids, applied, strict=True):
        if n < published:
            raise BenchError(f"{wid} applied {n} of {published} ticks")
    return min(applied)


async def worker_round(
    nc: Client, server: NatsServer, cfg: BenchConfig, plan: Plan, tmp: Path, redis_url: str = ""
) -> dict[str, float]:
    """One round B: start ``cfg.instances`` workers, load the book, measure them (every reply
    checked), then with N ≥ 2 the forwarding hop (:mod:`.hop`), and stop them.

    Returns:
        The figures, plus ``decided_<i>``: checks instance ``i`` decided during the phases.

    Raises:
        BenchError: a worker did not start, answered wrongly or lost ticks, or the workers'
            membership did not converge.
    """
    fleet, figures = await start_fleet(nc, server.url, cfg, tmp, redis_url)
    try:
        bases = [await applied_ticks(port) for port in fleet.ports]
        counts = await decided(fleet.ports)

        async def forwarded() -> float:
            return await forwarded_total(fleet.ports)

        measured, published = await _phases(nc, server, cfg, plan, fleet.pids, forwarded)
        applied = await _ticks_absorbed(fleet, bases, published)
        after = await decided(fleet.ports)
        figures |= {
            f"decided_{i}": b - a for i, (a, b) in enumerate(zip(counts, after, strict=True))
        }
        if len(fleet.ids) > 1:
            n = min(HOP_REQUESTS, plan.requests or HOP_REQUESTS)
            figures |= await hop_phase(nc, plan, fleet.ports, n)
        return (
            figures
            | measured
            | {
                "ticks_published": float(published),
                "ticks_applied": float(applied),
                "peak_rss_mb": max(peak_rss_mb(pid) for pid in fleet.pids),
            }
        )
    finally:
        await fleet.stop()


async def ingestion_round(
    nc: Client,
    url: str,
    cfg: BenchConfig,
    tmp: Path,
    on_step: Callable[[str], None] | None,
    redis_url: str = "",
) -> dict[str, Any]:
    """A fresh worker (one, whatever ``cfg.instances``) with the loaded book, under the tick
    ladder (see :mod:`.ingest`)."""
    fleet, _ = await start_fleet(nc, url, replace(cfg, instances=1), tmp, redis_url)
    try:
        ladder = await tick_ladder(
            url, fleet.ports[0], cfg.positions, cfg.tick_rates, cfg.tick_seconds, on_step
        )
        return ladder | {"peak_rss_mb": peak_rss_mb(fleet.pids[0])}
    finally:
        await fleet.stop()


def steps_total(cfg: BenchConfig) -> int:
    """How many progress steps a run reports at most."""
    return int(cfg.inprocess) + 2 * cfg.rounds + len(cfg.tick_rates)


async def run_bench(
    cfg: BenchConfig, on_step: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the whole bench and return its figures (see :func:`.summary.summarize`).

    Args:
        cfg: book size, load, in-flight levels, rounds and tick rates.
        on_step: called with a description as each step starts (progress display).

    Raises:
        BenchError: a responder did not start, a worker reply was wrong, ticks were lost.
        ValueError: a size or count is out of range.
    """
    if min(cfg.accounts, cfg.positions, cfg.rounds, cfg.instances) < 1 or cfg.duration <= 0:
        raise ValueError("accounts, positions, rounds, instances and duration must be positive")
    if (cfg.requests is not None and cfg.requests < 1) or any(k < 1 for k in cfg.inflight):
        raise ValueError("requests and in-flight levels must be ≥ 1")

    def step(text: str) -> None:
        if on_step is not None:
            on_step(text)

    inprocess: dict[str, float] = {}
    if cfg.inprocess:
        step("in-process check path")
        inprocess = inprocess_figures(cfg.accounts, cfg.positions, cfg.var)
    n = min(DISTINCT_BODIES, cfg.requests or DISTINCT_BODIES)
    detail = "full" if cfg.var else None  # --var: every approval must show its VaR
    bodies, order_ids, expected = bench_requests(n, cfg.accounts, cfg.positions, detail)
    count, seconds = (cfg.requests, None) if cfg.requests else (0, cfg.duration)
    plan = Plan(bodies, order_ids, count, seconds, expected=expected, var=cfg.var)
    floor: list[dict[str, float]] = []
    worker: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="risk-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        write_policy_file(tmp / "policies.toml", [var_policy()] if cfg.var else ())
        with NatsServer(tmp / "nats") as server, var_redis(cfg.var, tmp) as redis_url:
            nc = await nats.connect(server.url)
            try:
                for r in range(cfg.rounds):
                    step(f"round {r + 1}/{cfg.rounds} A: floor")
                    floor.append(await floor_round(nc, server, cfg, plan, tmp))
                    step(f"round {r + 1}/{cfg.rounds} B: worker")
                    worker.append(await worker_round(nc, server, cfg, plan, tmp, redis_url))
                ingestion = await ingestion_round(nc, server.url, cfg, tmp, on_step, redis_url)
            finally:
                await nc.close()
    return summarize(cfg, floor, worker, ingestion, inprocess)
