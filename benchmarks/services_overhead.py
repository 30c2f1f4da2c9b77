"""What the NATS services protocol costs on the sequential check round trip.

Starts its own nats-server, then alternates rounds (A B A B A B) of a worker process serving
checks through the services-protocol endpoint (``$SRV.*``, the default) and one serving them on
a plain queue subscription (``RISK_SERVICES_PROTOCOL=false``); the client (this process) sends
``dry_run`` checks one at a time and prints median p50/p99 per mode and the ratio.

    .venv/bin/python benchmarks/services_overhead.py [--requests 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import nats

from risk_worker.devstack.nats_server import NatsServer

CLI = str(Path(sys.executable).parent / "risk-worker")
REQUEST = msgspec.json.encode(
    {
        "order_id": "bench",
        "account_id": "BENCH",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": 0.1,
        "price": 50_000.0,
        "dry_run": True,
    }
)


async def round_trip(url: str, protocol: bool, requests: int) -> tuple[float, float]:
    """Start a worker in ``protocol`` mode, measure ``requests`` sequential checks (µs)."""
    env = {
        **os.environ,
        "RISK_NATS_URL": url,
        "RISK_SERVICES_PROTOCOL": str(protocol).lower(),
        "RISK_KV_BUCKET": "bench",
        "RISK_LOG_LEVEL": "WARNING",
        "RISK_HTTP_PORT": "0",
    }
    worker = await asyncio.create_subprocess_exec(
        CLI, "run", env=env, stderr=asyncio.subprocess.DEVNULL
    )
    nc = await nats.connect(url)
    try:
        deadline = time.monotonic() + 20
        while True:  # until this worker knows the account and approves
            pnl = {"account_id": "BENCH", "balance": 1e9, "timestamp": time.time_ns() // 10**6}
            await nc.publish("pnl.update", msgspec.json.encode(pnl))
            try:
                reply = msgspec.json.decode(
                    (await nc.request("risk.check.order", REQUEST, timeout=0.5)).data
                )
                if reply["approved"]:
                    break
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not start")
            await asyncio.sleep(0.05)
        for _ in range(200):  # warm-up
            await nc.request("risk.check.order", REQUEST, timeout=2)
        samples = []
        for _ in range(requests):
            t = time.perf_counter_ns()
            await nc.request("risk.check.order", REQUEST, timeout=2)
            samples.append((time.perf_counter_ns() - t) / 1000)
        samples.sort()
        return statistics.median(samples), samples[int(len(samples) * 0.99)]
    finally:
        await nc.close()
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 10)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, NatsServer(Path(tmp)) as server:
        results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for _ in range(args.rounds):
            for protocol in (True, False):
                results[protocol].append(await round_trip(server.url, protocol, args.requests))
        med = {
            p: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
            for p, rs in results.items()
        }
        print(
            f"sequential check round trip, {args.requests} requests x {args.rounds} rounds "
            f"(median of rounds)"
        )
        for protocol, label in (
            (False, "plain queue subscription"),
            (True, "services protocol ($SRV)"),
        ):
            print(f"  {label:28s} p50 {med[protocol][0]:7.1f} µs   p99 {med[protocol][1]:7.1f} µs")
        print(
            f"  overhead: p50 {med[True][0] / med[False][0] - 1:+.1%}, "
            f"p99 {med[True][1] / med[False][1] - 1:+.1%} (target < +10%)"
        )


if __name__ == "__main__":
    asyncio.run(main())
