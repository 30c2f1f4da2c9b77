"""Microbenchmark of the in-process check path (decode → decide → encode), no NATS.

Builds a book of 1,000 accounts × 20 positions with 13 policies (by default: the eight built-in
and five extra), times ``CheckHandler.answer`` on pre-encoded ``dry_run`` requests and each
stage on its own, verifies every reply is approved, and prints p50/p90/p99/mean in µs and
calls/s (JSON with ``--json``). The replies are compact approvals (no post-trade metrics,
subjects.md §5.2), as a request that does not ask ``detail`` ``full`` gets them.

    .venv/bin/python benchmarks/check_path.py [--accounts 1000] [--positions 20]
        [--requests 20000] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

from risk_worker.bench.core import build_engine, measure, request_bodies

STAGES = (
    ("answer", "decode → decide → encode (CheckHandler.answer)"),
    ("decode", "decode (check_request.parse_check)"),
    ("decide", "decide (RiskEngine.check)"),
    ("encode", "encode (reply_msg + msgspec)"),
)
TARGETS_P50_US = (("decide", "decision", 5.0), ("answer", "answer", 8.0))
"""Issue 16: the in-process decision ≤ 5 µs and the answer ≤ 8 µs p50 (issue 6 had ≤ 15 µs)."""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000, help="accounts in the book")
    parser.add_argument("--positions", type=int, default=20, help="positions per account")
    parser.add_argument("--requests", type=int, default=20_000, help="distinct requests")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes over them")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    engine = build_engine(args.accounts, args.positions)
    build_s = time.perf_counter() - started
    bodies = request_bodies(args.requests, args.accounts, args.positions)
    figures = measure(engine, bodies, args.repeat)
    env = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "accounts": args.accounts,
        "positions": args.positions,
        "requests": args.requests,
        "repeat": args.repeat,
        "build_s": round(build_s, 3),
    }
    if args.json:
        json.dump({**env, **figures}, sys.stdout, indent=2)
        print()
        return 0

    print(f"Python {env['python']} ({env['implementation']}) on {env['platform']}")
    print(
        f"book: {args.accounts} accounts × {args.positions} positions, "
        f"{int(figures['policies'])} policies (built in {build_s:.2f} s); "
        f"{int(figures['calls'])} timed calls per stage, GC disabled while timing, "
        "every reply verified approved"
    )
    header = (
        f"{'stage':<48} {'p50 µs':>8} {'p90 µs':>8} {'p99 µs':>8} {'mean µs':>8} {'calls/s':>9}"
    )
    print(header)
    print("-" * len(header))
    for key, label in STAGES:
        print(
            f"{label:<48} {figures[key + '_p50_us']:>8.1f} {figures[key + '_p90_us']:>8.1f} "
            f"{figures[key + '_p99_us']:>8.1f} {figures[key + '_mean_us']:>8.1f} "
            f"{figures[key + '_calls_per_s']:>9,.0f}"
        )
    for key, label, limit in TARGETS_P50_US:
        p50 = figures[key + "_p50_us"]
        verdict = "met" if p50 <= limit else f"missed by {p50 / limit:.2f}×"
        print(f"target: {label} p50 ≤ {limit:g} µs — {verdict} ({p50:.1f} µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
