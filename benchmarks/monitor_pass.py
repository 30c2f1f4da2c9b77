"""The monitor's cost per account, in process: what one pass over the book costs the worker.

Builds the bench's book (1,000 accounts × 20 positions, 14 policies by default), then times
passes of ``RiskEngine.monitor_account`` over every account (marks refreshed before each pass, GC
off while timing), alone and with the ``risk.metrics`` message the gate compares
(``wire.outbound.metrics_msg``). Prints the median per account in µs over ``--passes`` passes.

    .venv/bin/python benchmarks/monitor_pass.py [--accounts 1000] [--positions 20] [--passes 7]
        [--json]

Another tree: ``PYTHONPATH=<tree>`` (run from outside the repository, e.g. ``cd /tmp``).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time

from risk_worker.bench.core import build_engine, refresh_marks, wall_ms
from risk_worker.domain.engine import RiskEngine
from risk_worker.wire.outbound import metrics_msg
from risk_worker.wire.strategies import strategies_msg


def one_pass(engine: RiskEngine, positions: int, with_message: bool) -> float:
    """One pass over every known account; µs per account."""
    now = wall_ms()
    refresh_marks(engine, positions, now)
    engine.begin_monitor_pass(now)
    accounts = engine.known_accounts()
    started = time.perf_counter_ns()
    for account_id in accounts:
        r = engine.monitor_account(account_id, now, True, False)
        if with_message and r is not None:
            metrics_msg(
                r.account_id,
                now,
                r.metrics,
                r.utilization,
                r.risk_level,
                r.trading_state,
                "bench",
                strategies_msg(r.strategies),
            )
    return (time.perf_counter_ns() - started) / 1000 / max(1, len(accounts))


def main(argv: list[str] | None = None) -> int:
    """Run the passes and print the medians; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    engine = build_engine(args.accounts, args.positions)
    one_pass(engine, args.positions, True)  # warm up
    gc.disable()
    try:
        figures = {
            label: round(
                statistics.median(
                    one_pass(engine, args.positions, message) for _ in range(args.passes)
                ),
                1,
            )
            for label, message in (("evaluate_us", False), ("evaluate_and_message_us", True))
        }
    finally:
        gc.enable()
    if args.json:
        print(json.dumps({"accounts": args.accounts, "positions": args.positions, **figures}))
    else:
        print(f"monitor_account per account: {figures['evaluate_us']} µs")
        print(f"  with its risk.metrics message: {figures['evaluate_and_message_us']} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
