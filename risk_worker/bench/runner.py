"""Run the bench: its own nats-server, alternating floor and worker rounds, then tick ingestion.

Round A runs the floor (:mod:`risk_worker.bench.floor`) alone, round B a ``risk-worker run``
process alone, so exactly one responder is in the queue group while a round is measured. In
both, the tick generator publishes ``market.tick.*`` at ``tick_rate`` while the sequential and
in-flight phases run, then stops for an idle sequential phase. Each worker round starts a fresh
worker on the bench's 14 policies (``RISK_POLICY_FILE``), loads its book through real events,
times its start and checks that it applied every tick. Figures are medians over rounds.

With ``var`` (``--var``) the policy file also holds a hard VaR policy and every worker gets
an embedded Redis, seeded with a full VaR history just before it starts
(:mod:`risk_worker.bench.varseed`); the in-process phase runs with the same.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from risk_worker.bench.config import BenchConfig
from risk_worker.bench.ingest import applied_ticks, tick_ladder, wait_applied
from risk_worker.bench.load import (
    CHECK_SUBJECT,
    BenchError,
    bench_requests,
    load_book,
    publish_marks,
    wait_answering,
    wait_approved,
    write_policy_file,
)
from risk_worker.bench.measure import Plan, measure_all, timed_phase
from risk_worker.bench.procs import (
    TickStream,
    alive,
    peak_rss_mb,
    spawn,
    stop,
    wait_ready,
    worker_env,
)
from risk_worker.bench.summary import inprocess_figures, summarize
from risk_worker.bench.varseed import seed_redis, var_policy, var_redis
from risk_worker.devstack.nats_server import NatsServer, free_port

RISK_WORKER = Path(sys.executable).parent / "risk-worker"
START_TIMEOUT_S = 30.0
DISTINCT_BODIES = 5_000


async def _phases(
    nc: Client, server: NatsServer, cfg: BenchConfig, plan: Plan, responder: int
) -> tuple[dict[str, float], int]:
    """Measured phases with ticks flowing, then the idle sequential phase: (figures, ticks)."""
    pids = {"client": os.getpid(), "server": server.pid or 0, "responder": responder}
    ticks = TickStream(server.url, cfg.positions, cfg.tick_rate)
    await ticks.start()
    try:
        figures = await measure_all(nc, plan, cfg.inflight, pids)
    finally:
        published = await ticks.stop()
    await publish_marks(nc, cfg.positions)  # fresh marks for market orders while idle
    figures |= await timed_phase(nc, plan, 1, "idle", pids)
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
        figures, _ = await _phases(nc, server, cfg, unchecked, proc.pid)
        return figures
    finally:
        await stop(proc)


async def start_worker(
    nc: Client, url: str, cfg: BenchConfig, tmp: Path, redis_url: str = ""
) -> tuple[asyncio.subprocess.Process, int, dict[str, float]]:
    """Spawn a worker, wait until ready and its book is loaded: (process, HTTP port, times).

    With ``redis_url`` (``--var``) its Redis is first emptied and seeded with the VaR history,
    and the loaded book must be approved with a VaR (the worker restored the history).
    """
    log = tmp / "worker.log"
    port = free_port()
    if redis_url:
        await seed_redis(redis_url, cfg.positions)
    env = worker_env(url, tmp / "policies.toml", port, redis_url)
    started = time.monotonic()
    proc = await spawn([str(RISK_WORKER), "run"], env, log)
    try:
        await alive(proc, log, wait_ready(port, START_TIMEOUT_S))
        ready = time.monotonic() - started
        await alive(proc, log, wait_answering(nc, START_TIMEOUT_S, cfg.positions))
        serving = time.monotonic() - started
        await load_book(nc, cfg.accounts, cfg.positions)
        approved = wait_approved(nc, cfg.accounts, cfg.positions, START_TIMEOUT_S, cfg.var)
        await alive(proc, log, approved)
    except BaseException:
        await stop(proc)
        raise
    times = {
        "start_to_ready_s": ready,
        "start_to_serving_s": serving,
        "start_to_book_loaded_s": time.monotonic() - started,
    }
    return proc, port, times


async def worker_round(
    nc: Client, server: NatsServer, cfg: BenchConfig, plan: Plan, tmp: Path, redis_url: str = ""
) -> dict[str, float]:
    """One round B: start a worker, load its book, measure it (every reply checked), stop it.

    Raises:
        BenchError: the worker did not start, answered wrongly or lost ticks.
    """
    proc, port, figures = await start_worker(nc, server.url, cfg, tmp, redis_url)
    try:
        base = await applied_ticks(port)
        measured, published = await _phases(nc, server, cfg, plan, proc.pid)
        applied = await wait_applied(port, base, published, 10.0)
        if applied < published:
            raise BenchError(f"the worker applied {applied} of {published} ticks")
        return (
            figures
            | measured
            | {
                "ticks_published": float(published),
                "ticks_applied": float(applied),
                "peak_rss_mb": peak_rss_mb(proc.pid),
            }
        )
    finally:
        await stop(proc)


async def ingestion_round(
    nc: Client,
    url: str,
    cfg: BenchConfig,
    tmp: Path,
    on_step: Callable[[str], None] | None,
    redis_url: str = "",
) -> dict[str, Any]:
    """A fresh worker with the loaded book, under the tick ladder (see :mod:`.ingest`)."""
    proc, port, _ = await start_worker(nc, url, cfg, tmp, redis_url)
    try:
        ladder = await tick_ladder(
            url, port, cfg.positions, cfg.tick_rates, cfg.tick_seconds, on_step
        )
        return ladder | {"peak_rss_mb": peak_rss_mb(proc.pid)}
    finally:
        await stop(proc)


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
    if cfg.accounts < 1 or cfg.positions < 1 or cfg.rounds < 1 or cfg.duration <= 0:
        raise ValueError("accounts, positions, rounds and duration must be positive")
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
