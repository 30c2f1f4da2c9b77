"""A market-data generator for the bench: ``market.tick.<symbol>`` at a steady rate.

Run as its own process, ``python -m risk_worker.bench.ticks URL POSITIONS RATE [SECONDS]``.
It publishes ``{"price": …, "timestamp": …}`` ticks round-robin over the bench symbols
(``SYM000``…), prices within ±0.05 % of each symbol's bench mark so the book's decisions do not
change, in batches every millisecond so the rate holds at any level the process can reach.
Without SECONDS it runs until SIGTERM or SIGINT. It prints ``{"ready": true}`` once connected
(signals are handled from then on) and on exit one JSON line, ``{"published": N, "seconds":
T}``: how many ticks left for the server, and over how long.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable

import nats

from risk_worker.bench.core import mark_price, symbol

BATCH_INTERVAL_S = 0.001
JITTER = (-0.0005, -0.0002, 0.0, 0.0002, 0.0005)
"""Relative offsets of tick prices around a symbol's bench mark (±0.05 %)."""
MAX_BATCH = 2_000
"""At most this many ticks per batch, so a stall is not followed by an unbounded burst."""


def tick_subjects(positions: int) -> list[str]:
    """``market.tick.<symbol>`` of every bench symbol."""
    return [f"market.tick.{symbol(j)}" for j in range(positions)]


async def publish_ticks(
    url: str,
    positions: int,
    rate: float,
    seconds: float | None,
    stop: asyncio.Event,
    on_connected: Callable[[], None] | None = None,
) -> tuple[int, float]:
    """Publish ``rate`` ticks per second until ``seconds`` pass or ``stop`` is set.

    Args:
        url: NATS server URL, or several separated by commas (a cluster: it fails over).
        positions: how many symbols to cycle through.
        rate: ticks per second (> 0).
        seconds: how long; None to run until ``stop``.
        stop: set to end early.
        on_connected: called once connected, before the first tick.

    Returns:
        (ticks published, seconds from the first batch until the server had them all).
    """
    nc = await nats.connect(url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    if on_connected is not None:
        on_connected()
    subjects = tick_subjects(positions)
    prices = [[mark_price(j) * (1.0 + d) for d in JITTER] for j in range(positions)]
    sent = 0
    clock = time.perf_counter
    start = clock()
    end = None if seconds is None else start + seconds
    try:
        while not stop.is_set():
            now = clock()
            if end is not None and now >= end:
                now = end
            due = min(int(rate * (now - start)) - sent, MAX_BATCH)
            stamp = time.time_ns() // 1_000_000
            for k in range(sent, sent + due):
                j = k % positions
                price = prices[j][(k // positions) % len(JITTER)]
                body = b'{"price":%.6f,"timestamp":%d}' % (price, stamp)
                await nc.publish(subjects[j], body)
            sent += max(due, 0)
            if end is not None and now >= end:
                break
            await asyncio.sleep(BATCH_INTERVAL_S)
        await nc.flush()  # every tick has reached the server: the rate counts until here
        flushed = clock()
    finally:
        await nc.close()
    return sent, flushed - start


async def _main(url: str, positions: int, rate: float, seconds: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sent, elapsed = await publish_ticks(
        url, positions, rate, seconds, stop, lambda: print(json.dumps({"ready": True}), flush=True)
    )
    print(json.dumps({"published": sent, "seconds": elapsed}), flush=True)


def main(argv: list[str]) -> None:
    """Entry point: ``URL POSITIONS RATE [SECONDS]``."""
    import uvloop  # noqa: PLC0415

    seconds = float(argv[4]) if len(argv) > 4 else None
    uvloop.run(_main(argv[1], int(argv[2]), float(argv[3]), seconds))


if __name__ == "__main__":
    main(sys.argv)
