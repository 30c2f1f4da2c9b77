"""Run the bench: its own nats-server, then alternating floor and worker rounds.

Round A runs the floor (:mod:`risk_worker.bench.floor`) alone, round B a ``risk-worker run``
process alone, so exactly one responder is in the queue group while a round is measured. Each
worker round starts a fresh worker, loads its book through real events and times its start
(spawn → first answer, spawn → loaded book approved). Figures are medians over rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from risk_worker.bench.load import (
    BenchError,
    load_book,
    publish_marks,
    wait_answering,
    wait_approved,
)
from risk_worker.bench.measure import Plan, measure_all
from risk_worker.bench_core import request_bodies
from risk_worker.devservers import NatsServer

RISK_WORKER = Path(sys.executable).parent / "risk-worker"
START_TIMEOUT_S = 30.0
DISTINCT_BODIES = 5_000
TICKS_NOTE = "not measured in this version"
POLICIES_NOTE = "worker defaults (5 policies, no database)"


@dataclass(frozen=True)
class BenchConfig:
    """Book size, load and rounds of one bench run."""

    accounts: int = 1000
    positions: int = 20
    requests: int = 2000
    duration: float | None = None
    inflight: tuple[int, ...] = (16, 128)
    rounds: int = 3


def figure_keys(inflight: tuple[int, ...]) -> list[str]:
    """The keys of one side's figures: ``seq_*`` then ``c<K>_*`` per level."""
    keys = ["seq_p50_us", "seq_p99_us", "seq_rps"]
    for k in inflight:
        keys += [f"c{k}_rps", f"c{k}_p50_us", f"c{k}_p99_us"]
    return keys


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (``VmHWM``) of a live process, MiB; 0.0 where unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _tail(log: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


async def _spawn(args: list[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:  # the child keeps its own descriptor
        return await asyncio.create_subprocess_exec(
            *args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            proc.kill()
    await proc.wait()


async def _alive(
    proc: asyncio.subprocess.Process, log: Path, step: Coroutine[Any, Any, None]
) -> None:
    """Await ``step``, failing fast if ``proc`` exits meanwhile."""
    task = asyncio.ensure_future(step)
    exited = asyncio.ensure_future(proc.wait())
    await asyncio.wait({task, exited}, return_when=asyncio.FIRST_COMPLETED)
    exited.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise BenchError(f"{log.stem} exited with code {proc.returncode}{_tail(log)}")
    task.result()


async def _reply_bytes(nc: Client, body: bytes) -> float:
    return float(len((await nc.request("risk.check.order", body, timeout=5.0)).data))


async def floor_round(
    nc: Client, url: str, cfg: BenchConfig, plan: Plan, log: Path
) -> dict[str, float]:
    """One round A: start the floor, measure it (replies not checked), stop it."""
    proc = await _spawn(
        [sys.executable, "-m", "risk_worker.bench.floor", url, str(cfg.positions)],
        dict(os.environ),
        log,
    )
    try:
        await _alive(proc, log, wait_answering(nc, START_TIMEOUT_S))
        figures = await measure_all(
            nc,
            Plan(plan.bodies, plan.order_ids, plan.requests, plan.duration, verify=False),
            cfg.inflight,
        )
        figures["reply_bytes"] = await _reply_bytes(nc, plan.bodies[0])
        return figures
    finally:
        await _stop(proc)


async def worker_round(
    nc: Client, url: str, cfg: BenchConfig, plan: Plan, log: Path
) -> dict[str, float]:
    """One round B: start a worker, load its book, measure it (every reply checked), stop it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISK_")}
    env |= {
        "RISK_NATS_URL": url,
        "RISK_KV_BUCKET": "bench",
        "RISK_HTTP_PORT": "0",
        "RISK_LOG_LEVEL": "WARNING",
        "RISK_WORKER_ID": "bench-worker",
    }
    started = time.monotonic()
    proc = await _spawn([str(RISK_WORKER), "run"], env, log)
    try:
        await _alive(proc, log, wait_answering(nc, START_TIMEOUT_S, cfg.positions))
        serving = time.monotonic() - started
        await load_book(nc, cfg.accounts, cfg.positions)
        await _alive(proc, log, wait_approved(nc, cfg.accounts, cfg.positions, START_TIMEOUT_S))
        ready = time.monotonic() - started

        async def marks() -> None:  # keep market orders' marks fresh (RISK_MARK_MAX_AGE)
            await publish_marks(nc, cfg.positions)

        figures = await measure_all(nc, plan, cfg.inflight, marks)
        figures["reply_bytes"] = await _reply_bytes(nc, plan.bodies[0])
        figures |= {
            "start_to_serving_s": serving,
            "start_to_ready_s": ready,
            "peak_rss_mb": peak_rss_mb(proc.pid),
        }
        return figures
    finally:
        await _stop(proc)


def summarize(
    cfg: BenchConfig, floor: list[dict[str, float]], worker: list[dict[str, float]]
) -> dict[str, Any]:
    """Medians over rounds, ratios worker/floor, start, memory and verification."""
    keys = figure_keys(cfg.inflight)
    med_floor = {k: statistics.median(r[k] for r in floor) for k in keys}
    med_worker = {k: statistics.median(r[k] for r in worker) for k in keys}
    verified = sum(int(v) for r in worker for k, v in r.items() if k.endswith("_verified"))
    return {
        "config": asdict(cfg),
        "floor": med_floor,
        "worker": med_worker,
        "ratios": {k: med_worker[k] / med_floor[k] if med_floor[k] else 0.0 for k in keys},
        "worker_peak_rss_mb": max(r["peak_rss_mb"] for r in worker),
        "worker_start_to_serving_s": statistics.median(r["start_to_serving_s"] for r in worker),
        "worker_start_to_ready_s": statistics.median(r["start_to_ready_s"] for r in worker),
        "reply_bytes": {"floor": floor[0]["reply_bytes"], "worker": worker[0]["reply_bytes"]},
        "checks_verified": verified,
        "verified": verified > 0,
        "policies": POLICIES_NOTE,
        "ticks": TICKS_NOTE,
        "rounds": {"floor": floor, "worker": worker},
    }


async def run_bench(
    cfg: BenchConfig, on_step: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the whole bench and return its figures (see :func:`summarize`).

    Args:
        cfg: book size, load, in-flight levels and rounds.
        on_step: called with a description as each round starts (progress display).

    Raises:
        BenchError: a responder did not start, or a worker reply was wrong.
        ValueError: a size or count is out of range.
    """
    if cfg.accounts < 1 or cfg.positions < 1 or cfg.rounds < 1 or cfg.requests < 1:
        raise ValueError("accounts, positions, rounds and requests must be ≥ 1")
    if any(k < 1 for k in cfg.inflight):
        raise ValueError("in-flight levels must be ≥ 1")
    bodies = request_bodies(min(DISTINCT_BODIES, cfg.requests), cfg.accounts, cfg.positions)
    plan = Plan(bodies, [f"bench-{k}" for k in range(len(bodies))], cfg.requests, cfg.duration)
    floor: list[dict[str, float]] = []
    worker: list[dict[str, float]] = []
    with (
        tempfile.TemporaryDirectory(prefix="risk-bench-") as tmp,
        NatsServer(Path(tmp) / "nats") as server,
    ):
        nc = await nats.connect(server.url)
        try:
            for r in range(cfg.rounds):
                if on_step is not None:
                    on_step(f"round {r + 1}/{cfg.rounds} A: floor")
                floor.append(await floor_round(nc, server.url, cfg, plan, Path(tmp) / "floor.log"))
                if on_step is not None:
                    on_step(f"round {r + 1}/{cfg.rounds} B: worker")
                worker.append(
                    await worker_round(nc, server.url, cfg, plan, Path(tmp) / "worker.log")
                )
        finally:
            await nc.close()
    return summarize(cfg, floor, worker)
