"""A check that finds the process idle: the in-process answer back to back and after a pause.

A sequential client leaves the worker idle between two requests (about 300 µs on the bench's
2-core machine), and the worker's replies then report a check 3–4× slower than under load
(``processing_time_us``). This separates the machine from the code: the same
``CheckHandler.answer`` on the same pre-encoded requests (the bench's book, 1,000 accounts ×
20 positions, 14 policies, GC off), timed back to back and with a ``time.sleep`` of
``--pause-us`` before each call, in alternating passes. Prints the median and p90 of each (µs).

    .venv/bin/python benchmarks/idle_answer.py [--pause-us 300] [--calls 3000] [--passes 4]
        [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time

from risk_worker.adapters.check_handler import CheckHandler
from risk_worker.bench.core import (
    MAX_REQUEST_BYTES,
    WORKER_ID,
    NullSink,
    build_engine,
    request_bodies,
)


def timed(handler: CheckHandler, bodies: list[bytes], pause_s: float) -> list[float]:
    """µs of each ``handler.answer`` over ``bodies``, with ``pause_s`` of sleep before each."""
    clock = time.perf_counter_ns
    samples = []
    for body in bodies:
        if pause_s:
            time.sleep(pause_s)
        started = clock()
        handler.answer(body)
        samples.append((clock() - started) / 1000)
    return samples


def main(argv: list[str] | None = None) -> int:
    """Time both ways in alternating passes and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pause-us", type=float, default=300.0, help="idle pause before a call")
    parser.add_argument("--calls", type=int, default=3000, help="calls per pass")
    parser.add_argument("--passes", type=int, default=4, help="passes of each (alternating)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    engine = build_engine(1000, 20)
    bodies = request_bodies(args.calls, 1000, 20)
    handler = CheckHandler(engine, lambda: True, WORKER_ID, MAX_REQUEST_BYTES, NullSink())
    timed(handler, bodies[:500], 0.0)  # warm up
    runs: dict[str, list[float]] = {"back_to_back": [], "after_pause": []}
    gc.collect()
    gc.disable()
    try:
        for _ in range(args.passes):
            runs["back_to_back"] += timed(handler, bodies, 0.0)
            runs["after_pause"] += timed(handler, bodies, args.pause_us / 1e6)
    finally:
        gc.enable()
    figures = {"pause_us": args.pause_us}
    for name, samples in runs.items():
        ordered = sorted(samples)
        figures[f"{name}_p50_us"] = round(statistics.median(ordered), 2)
        figures[f"{name}_p90_us"] = round(ordered[int(0.9 * len(ordered))], 2)
    if args.json:
        print(json.dumps(figures))
    else:
        for name in runs:
            print(
                f"{name:<13} p50 {figures[name + '_p50_us']:>7.1f} µs   "
                f"p90 {figures[name + '_p90_us']:>7.1f} µs"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
