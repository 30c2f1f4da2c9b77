"""The worker's CPU per tick, end to end: what bounds the ladder, measured on a busy machine.

Starts the bench's own nats-server and a ``risk-worker run`` with the bench's book (1,000
accounts × 20 positions, 14 policies: :func:`risk_worker.bench.fleet.start_fleet`), reads
the worker's CPU time (utime + stime, ``/proc/<pid>/stat``) while idle for ``--idle`` seconds,
then while the bench's tick generator publishes ``--rate`` ticks/s for ``--seconds`` and the
worker applies them all. CPU per tick = (CPU under ticks − idle CPU rate × that time) ÷ ticks.
CPU time counts only the time the worker ran, so sharing the cores with other processes moves
it far less than the ladder's wall-clock rates (cache and hyper-threading still do).

    .venv/bin/python benchmarks/tick_cpu.py [--rate 40000] [--seconds 5] [--idle 5]

Another tree: ``PYTHONPATH=<tree>`` (the worker process inherits it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nats

from risk_worker.bench.config import BenchConfig
from risk_worker.bench.fleet import start_fleet
from risk_worker.bench.ingest import applied_ticks, run_ticks, wait_applied
from risk_worker.bench.load import write_policy_file
from risk_worker.devstack.nats_server import NatsServer

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def measure(rate: float, seconds: float, idle: float) -> dict[str, float]:
    """Idle CPU, then CPU under ``rate`` ticks/s for ``seconds``; the figures."""
    cfg = BenchConfig()
    with tempfile.TemporaryDirectory(prefix="tick-cpu-") as tmp_dir:
        tmp = Path(tmp_dir)
        write_policy_file(tmp / "policies.toml", ())
        with NatsServer(tmp / "nats") as server:
            nc = await nats.connect(server.url)
            fleet, _ = await start_fleet(nc, server.url, cfg, tmp)
            proc, port = fleet.procs[0], fleet.ports[0]
            try:
                await asyncio.sleep(1.0)  # the book's first monitor passes
                cpu, started = cpu_s(proc.pid), time.monotonic()
                await asyncio.sleep(idle)
                idle_share = (cpu_s(proc.pid) - cpu) / (time.monotonic() - started)
                before = await applied_ticks(port)
                cpu, started = cpu_s(proc.pid), time.monotonic()
                published, _ = await run_ticks(server.url, cfg.positions, rate, seconds)
                applied = await wait_applied(port, before, published, 60.0)
                used, wall = cpu_s(proc.pid) - cpu, time.monotonic() - started
            finally:
                await fleet.stop()
                await nc.close()
    busy = used - idle_share * wall
    return {
        "rate": rate,
        "published": published,
        "applied": applied,
        "idle_cpu_share": round(idle_share, 3),
        "cpu_s": round(used, 2),
        "wall_s": round(wall, 2),
        "cpu_us_per_tick": round(busy / max(applied, 1) * 1e6, 2),
        "ticks_per_cpu_s": round(max(applied, 1) / busy) if busy > 0 else 0,
    }


def main(argv: list[str] | None = None) -> int:
    """Run it and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40_000.0, help="ticks per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long they flow")
    parser.add_argument("--idle", type=float, default=5.0, help="idle seconds measured first")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(measure(args.rate, args.seconds, args.idle))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
