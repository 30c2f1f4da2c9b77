"""Profile a worker under load with py-spy: where its CPU goes while it answers checks.

Starts a nats-server and a worker as ``risk-worker bench`` does (the bench's 10 policies, a
book of 1,000 accounts × 20 positions loaded through events, ticks at 5,000/s), sends checks
with ``--inflight`` outstanding for ``--seconds`` while ``py-spy record`` samples the worker,
then prints the functions with the largest inclusive and self shares of the samples.

    .venv/bin/pip install -e '.[profile]'        # py-spy
    .venv/bin/python benchmarks/profile_worker.py [--inflight 128] [--seconds 10]
        [--accounts 1000] [--positions 20] [--top 40] [--raw FILE] [--tick-rate 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import sys
import tempfile
from pathlib import Path

import nats

from risk_worker.bench.config import BenchConfig
from risk_worker.bench.fleet import start_fleet
from risk_worker.bench.load import bench_requests, write_policy_file
from risk_worker.bench.measure import Plan, run_phase
from risk_worker.bench.procs import TickStream
from risk_worker.devstack.nats_server import NatsServer

PY_SPY = Path(sys.executable).parent / "py-spy"


def frame_name(frame: str) -> str:
    """``function (file.py)`` of one py-spy raw frame ``function (path/file.py:line)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.split(':')[0].rsplit('/', 1)[-1]})" if where else name


def aggregate(raw: Path, top: int) -> str:
    """Inclusive and self shares of samples per function, from py-spy's raw (folded) output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [frame_name(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"{100 * v / total:5.1f}%  {k}" for k, v in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"{100 * v / total:5.1f}%  {k}" for k, v in own.most_common(top)]
    return "\n".join(lines)


async def profile(args: argparse.Namespace, raw: Path) -> None:
    """Run the worker under load and py-spy on it; py-spy's samples end up in ``raw``."""
    cfg = BenchConfig(accounts=args.accounts, positions=args.positions)
    tick_rate = cfg.tick_rate if args.tick_rate is None else args.tick_rate
    bodies, order_ids, expected = bench_requests(5_000, cfg.accounts, cfg.positions)
    plan = Plan(bodies, order_ids, 0, args.seconds + 2.0, expected=expected)
    with tempfile.TemporaryDirectory(prefix="risk-profile-") as tmp_dir:
        tmp = Path(tmp_dir)
        write_policy_file(tmp / "policies.toml")
        with NatsServer(tmp / "nats") as server:
            nc = await nats.connect(server.url)
            fleet, _ = await start_fleet(nc, server.url, cfg, tmp)
            ticks = TickStream(server.url, cfg.positions, tick_rate) if tick_rate > 0 else None
            if ticks is not None:
                await ticks.start()
            try:
                load = (
                    asyncio.ensure_future(run_phase(nc, plan, args.inflight, "p"))
                    if args.inflight > 0
                    else None
                )
                await asyncio.sleep(1.0)
                seconds = str(max(1, round(args.seconds)))
                spy = await asyncio.create_subprocess_exec(
                    *(str(PY_SPY), "record", "--pid", str(fleet.pids[0]), "--duration", seconds),
                    *("--rate", "250", "--format", "raw", "--nonblocking", "-o", str(raw)),
                )
                if await spy.wait() != 0:
                    raise RuntimeError(f"py-spy exited with code {spy.returncode}")
                if load is None:
                    print(f"no checks: {tick_rate:,.0f} ticks/s and the monitor only")
                else:
                    figures = await load
                    print(f"{args.inflight} in flight: {figures['p_rps']:,.0f} checks/s verified")
            finally:
                if ticks is not None:
                    await ticks.stop()
                await fleet.stop()
                await nc.close()


def main() -> int:
    """Parse arguments, profile, print the aggregate; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--inflight", type=int, default=128, help="checks outstanding (0: none, ticks only)"
    )
    parser.add_argument("--seconds", type=int, default=10, help="seconds of sampling")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--tick-rate", type=float, help="ticks/s while sampling (the bench's 5,000 by default)"
    )
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw samples in this file")
    args = parser.parse_args()
    if not PY_SPY.exists() and shutil.which("py-spy") is None:
        print("py-spy is not installed: .venv/bin/pip install -e '.[profile]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw or Path(tmp) / "raw.txt"
        asyncio.run(profile(args, raw))
        print(aggregate(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
