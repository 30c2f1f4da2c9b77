"""What the Redis snapshots cost a worker: its CPU at rest and its sequential check latency.

Starts the bench's nats-server and one worker with the bench's book (1,000 accounts × 20
positions, :func:`risk_worker.bench.fleet.start_fleet`), with or without an embedded Redis
(``--redis``: the worker then writes its snapshots there every monitor pass; no VaR). Measures
the worker's CPU (utime + stime) over ``--idle`` seconds with no checks and no ticks, then sends
``--requests`` checks one at a time and prints p50, p99, p99.9 and the slowest, in µs.

    .venv/bin/python benchmarks/redis_snapshots.py [--redis] [--idle 8] [--requests 6000]

Another tree: ``PYTHONPATH=<tree>`` (the worker process inherits it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nats

from risk_worker.bench.config import BenchConfig
from risk_worker.bench.fleet import start_fleet
from risk_worker.bench.load import bench_requests, write_policy_file
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.devstack.redis_server import RedisServer

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def measure(with_redis: bool, idle: float, requests: int) -> dict[str, float]:
    """Start the stack, measure, stop it; the figures."""
    cfg = BenchConfig()
    with tempfile.TemporaryDirectory(prefix="redis-snapshots-") as tmp_dir:
        tmp = Path(tmp_dir)
        write_policy_file(tmp / "policies.toml")
        with NatsServer(tmp / "nats") as server, contextlib.ExitStack() as stack:
            redis_url = stack.enter_context(RedisServer(tmp / "redis")).url if with_redis else ""
            nc = await nats.connect(server.url)
            fleet, _ = await start_fleet(nc, server.url, cfg, tmp, redis_url)
            try:
                await asyncio.sleep(2.0)  # the first monitor passes and snapshot writes
                pid = fleet.pids[0]
                cpu, started = cpu_s(pid), time.monotonic()
                await asyncio.sleep(idle)
                idle_cores = (cpu_s(pid) - cpu) / (time.monotonic() - started)
                bodies = bench_requests(5_000, cfg.accounts, cfg.positions)[0]
                latencies = []
                for i in range(requests):
                    sent = time.perf_counter_ns()
                    await nc.request("risk.check.order", bodies[i % len(bodies)], timeout=5.0)
                    latencies.append((time.perf_counter_ns() - sent) / 1000)
            finally:
                await fleet.stop()
                await nc.close()
    latencies.sort()

    def at(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)

    return {
        "redis": float(with_redis),
        "idle_cpu_cores": round(idle_cores, 3),
        "p50_us": at(0.5),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
        "max_us": round(latencies[-1], 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run it and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", action="store_true", help="the worker keeps snapshots in Redis")
    parser.add_argument("--idle", type=float, default=8.0, help="seconds of CPU measured at rest")
    parser.add_argument("--requests", type=int, default=6_000, help="sequential checks")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(measure(args.redis, args.idle, args.requests))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
