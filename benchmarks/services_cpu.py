"""What serving checks as a NATS service costs the responder per request, under load.

Starts its own nats-server, then alternates rounds (A B [C] A B [C] ...) of one worker process
per mode, each with its book loaded through real events (``risk_worker.bench.load``) and no
ticks flowing, and measures at each in-flight level (64 and 128 by default) the throughput and
the responder's CPU µs per request (``/proc/<pid>/stat`` before and after the phase):

- ``srv``: ``RISK_SERVICES_PROTOCOL=true`` (discovery, ``$SRV.*``) from this tree;
- ``plain``: ``RISK_SERVICES_PROTOCOL=false`` (a plain queue subscription, no discovery);
- ``base`` (with ``--base DIR``): ``RISK_SERVICES_PROTOCOL=true`` from another source tree,
  e.g. an earlier commit unpacked with ``git archive <commit> | tar -x -C DIR``; its package
  is put first on ``PYTHONPATH``, so the same interpreter runs that tree's worker.

Every reply is verified (2 % are orders that must be denied). Prints the median of rounds.

    .venv/bin/python benchmarks/services_cpu.py [--accounts 200] [--duration 3] [--rounds 3]
        [--inflight 64,128] [--base DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import nats

from risk_worker.bench.load import (
    bench_requests,
    load_book,
    wait_answering,
    wait_approved,
    write_policy_file,
)
from risk_worker.bench.measure import Plan, timed_phase, warm_up
from risk_worker.bench.procs import alive, spawn, stop, wait_ready, worker_env
from risk_worker.devstack.nats_server import NatsServer, free_port

START_TIMEOUT_S = 30.0
RUN_WORKER = "from risk_worker.cli.main import main; main()"


async def one_round(
    url: str, mode: str, args: argparse.Namespace, plan: Plan, tmp: Path
) -> dict[str, float]:
    """Start the worker of ``mode``, load its book, measure each in-flight level, stop it."""
    port = free_port()
    env = worker_env(url, tmp / "policies.toml", port)
    env["RISK_SERVICES_PROTOCOL"] = "false" if mode == "plain" else "true"
    if mode == "base":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.base, env.get("PYTHONPATH")]))
    log = tmp / f"{mode}.log"
    proc = await spawn([sys.executable, "-c", RUN_WORKER, "run"], env, log)
    nc = await nats.connect(url)
    try:
        await alive(proc, log, wait_ready(port, START_TIMEOUT_S))
        await alive(proc, log, wait_answering(nc, START_TIMEOUT_S, args.positions))
        await load_book(nc, args.accounts, args.positions)
        await alive(proc, log, wait_approved(nc, args.accounts, args.positions, START_TIMEOUT_S))
        await warm_up(nc, plan)
        pids = {"responder": proc.pid, "client": os.getpid()}
        figures: dict[str, float] = {}
        for level in args.inflight:
            figures |= await timed_phase(nc, plan, level, f"c{level}", pids)
        return figures
    finally:
        await nc.close()
        await stop(proc)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--inflight", type=lambda s: [int(x) for x in s.split(",")], default=[64, 128]
    )
    parser.add_argument("--base", default="", help="source tree of the 'base' mode")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    modes = ["base", "srv", "plain"] if args.base else ["srv", "plain"]
    bodies, order_ids, expected = bench_requests(5_000, args.accounts, args.positions)
    plan = Plan(bodies, order_ids, 0, args.duration, expected=expected)
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp, NatsServer(Path(tmp)) as server:
        write_policy_file(Path(tmp) / "policies.toml")
        for r in range(args.rounds):
            for mode in modes:
                results[mode].append(await one_round(server.url, mode, args, plan, Path(tmp)))
                print(f"round {r + 1} {mode}: done", file=sys.stderr)
    medians = {
        m: {k: statistics.median(f[k] for f in rs) for k in rs[0]} for m, rs in results.items()
    }
    if args.json:
        print(json.dumps({"rounds": results, "medians": medians}, indent=1))
        return
    print(
        f"{args.accounts} accounts x {args.positions} positions, {args.duration} s phases, "
        f"{args.rounds} alternating rounds (median of rounds)"
    )
    for level in args.inflight:
        for m in modes:
            f = medians[m]
            print(
                f"  {level:4d} in flight  {m:6s} {f[f'c{level}_rps']:8.0f}/s  responder "
                f"{f[f'c{level}_cpu_responder_us']:6.1f} µs/req  client "
                f"{f[f'c{level}_cpu_client_us']:6.1f} µs/req"
            )


if __name__ == "__main__":
    asyncio.run(main())
