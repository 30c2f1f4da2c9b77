"""The decision's cost in instructions, for comparisons a noisy machine cannot blur.

Builds a book (100 accounts × 20 positions, 13 policies by default), parses 4,000 dry-run
requests, then calls ``RiskEngine.check`` on the first N with GC off (each must be approved).
Run it under callgrind for two values of N; the difference of the totals divided by the
difference of N is the instructions per check (setup cancels out):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/check_instructions.py 1000     # then 3000

To compare two trees, run each with ``PYTHONPATH=<tree>`` from that tree. ``--live`` makes
the orders non-dry-run, 1 ms apart: each approval reserves, and each is counted by the
throttle (100 accounts: about 10 checks per second each, under the built-in limit).
"""

from __future__ import annotations

import argparse
import gc
import time

from risk_worker.bench.core import MAX_REQUEST_BYTES, build_engine, request_bodies
from risk_worker.wire import inbound


def main() -> None:
    """Check the first N orders (argument) against the benchmark book."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="how many checks (at most 4,000)")
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--live", action="store_true", help="non-dry-run orders, 1 ms apart")
    args = parser.parse_args()
    engine = build_engine(accounts=args.accounts, positions=args.positions)
    bodies = request_bodies(4000, args.accounts, args.positions)
    if args.live:
        bodies = [b.replace(b'"dry_run":true', b'"dry_run":false') for b in bodies]
    orders = [inbound.parse_check(b, MAX_REQUEST_BYTES) for b in bodies]
    gc.disable()
    now = time.time_ns() // 1_000_000
    step = 1 if args.live else 0
    for k, order in enumerate(orders[: args.n]):
        decision = engine.check(order, now + k * step, True)
        if not decision.approved:
            raise SystemExit(f"order {order.order_id} denied: {decision.message}")


if __name__ == "__main__":
    main()
