"""What one ``market.tick.*`` costs the worker: decode, apply, count, and through nats-py.

Builds the bench's book (1,000 accounts × 20 positions, fresh marks) and the tick generator's
bodies (``{"price": …, "timestamp": …}`` within ±0.05 % of each mark, round-robin over the
symbols), then times per tick, GC off, the median of ``--repeat`` passes:

- ``parse``: decoding a tick (``wire.ticks.parse_tick``; ``wire.inbound.parse_tick`` before);
- ``apply``: ``RiskEngine.set_marks`` in batches of the feed's size (``set_mark`` per tick
  before) — the suspect filter, symbol limit and VaR sampling included;
- ``count``: ``risk_events_total`` (one ``inc`` per batch; one per tick before);
- ``nats``: the whole path: pre-encoded ``MSG`` frames written by a minimal NATS server in this
  process (INFO, PONG, SUB: no nats-server, no other process) through a real nats-py client
  into the tree's consumer (``adapters.tick_feed.TickFeed``; ``WorkerService._on_tick``
  before), until the worker's counter has every tick;
- ``floor``: the same with a callback that does nothing: nats-py's own per-message work.

Wall clock on a shared machine is noisy; instructions are not. Under callgrind run one stage
for two tick counts and divide the difference by the difference (setup cancels out)::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/tick_path.py --only nats --ticks 2000     # then 12000

Another tree: ``PYTHONPATH=<tree>`` (one before issue 16 is timed through its own APIs).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import nats
import uvloop
from nats.aio.client import Client
from nats.aio.msg import Msg

from risk_worker.bench.core import build_engine, mark_price, symbol, wall_ms
from risk_worker.bench.ticks import JITTER
from risk_worker.domain.engine import RiskEngine
from risk_worker.service.observability import Metrics

try:  # the tree of issue 16
    from risk_worker.adapters.tick_feed import KIND, MAX_BATCH, TickFeed
    from risk_worker.wire.ticks import parse_tick

    FEED = True
except ImportError:  # a tree before it
    from risk_worker.adapters.nats_service import WorkerService
    from risk_worker.wire.inbound import parse_tick  # type: ignore[attr-defined,no-redef]

    KIND, MAX_BATCH, FEED = "market.tick", 1, False

STAGES = ("parse", "apply", "count", "nats", "floor")


def tick_frames(positions: int, now: int) -> list[tuple[str, bytes]]:
    """(subject, body) of one cycle of the generator: every symbol at every jitter."""
    return [
        (f"market.tick.{symbol(k % positions)}", body(k, positions, now))
        for k in range(positions * len(JITTER))
    ]


def body(k: int, positions: int, now: int) -> bytes:
    """The ``k``-th tick's body, as :mod:`risk_worker.bench.ticks` writes it."""
    price = mark_price(k % positions) * (1.0 + JITTER[(k // positions) % len(JITTER)])
    return b'{"price":%.6f,"timestamp":%d}' % (price, now)


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    """``items`` cut into lists of ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def repeated(cycle: list[Any], n: int) -> list[Any]:
    """The first ``n`` items of ``cycle`` repeated (cheap: setup cancels out under callgrind)."""
    return (cycle * (n // len(cycle) + 1))[:n]


def stage_parse(ticks: list[tuple[str, bytes]]) -> Callable[[], None]:
    """Decode every tick."""

    def run() -> None:
        for subject, data in ticks:
            parse_tick(data, subject)

    return run


def stage_apply(engine: RiskEngine, cycle: list[tuple[str, bytes]], n: int) -> Callable[[], None]:
    """Apply ``n`` decoded ticks, as the tree's consumer does."""
    parsed = repeated([parse_tick(data, subject) for subject, data in cycle], n)
    batches = chunks(parsed, MAX_BATCH)

    def run() -> None:
        now = wall_ms()
        if not FEED:
            for sym, price, ts in parsed:
                engine.set_mark(sym, price, now if ts is None else ts, now)
            return
        for batch in batches:
            engine.set_marks(batch, now)

    return run


def stage_count(metrics: Metrics, n: int) -> Callable[[], None]:
    """Count ``n`` applied ticks, as the tree's consumer does."""

    def run() -> None:
        if not FEED:
            for _ in range(n):
                metrics.event(KIND)
            return
        for _ in range(n // MAX_BATCH):
            metrics.events(KIND, MAX_BATCH)

    return run


async def through_nats(engine: RiskEngine, data: bytes, n: int, floor: bool) -> tuple[float, float]:
    """Write ``data`` (``n`` MSG frames for sid 1) from a minimal server to a nats-py client
    running the tree's consumer (a no-op callback when ``floor``); (wall, CPU) seconds from the
    first write until all are counted."""
    metrics = Metrics()
    sids: dict[str, bytes] = {}
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(b'INFO {"server_id":"bench","version":"2.10.0","proto":1,"headers":true}\r\n')
        while line := await reader.readline():
            if line.startswith(b"PING"):
                writer.write(b"PONG\r\n")
            elif line.startswith(b"SUB"):
                sids[line.split()[1].decode()] = line.split()[-1]

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    nc = await nats.connect(f"nats://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    done = asyncio.get_running_loop().create_future()
    seen = [0]

    async def on_done(_msg: object) -> None:
        done.set_result(None)

    async def noop(_msg: Msg) -> None:
        seen[0] += 1

    await nc.subscribe("bench.done", cb=on_done)
    feed = await consume(nc, engine, metrics, noop if floor else None)
    await nc.flush()
    await nc.flush()  # nats-py 2.16's PING can overtake a buffered SUB: the second follows it
    child = metrics._events[KIND]._value  # the counter's value: read cheaply, often
    counted: Callable[[], int] = (lambda: seen[0]) if floor else (lambda: int(child.get()))
    frames = data.replace(b" 1 ", b" " + sids["market.tick.*"] + b" ")
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(frames), 65_536):
        writers[0].write(frames[i : i + 65_536])
        await writers[0].drain()
    writers[0].write(b"MSG bench.done %s 0\r\n\r\n" % sids["bench.done"])
    await done
    while counted() < n:  # noqa: ASYNC110  # polling the counter is what is timed
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    if feed is not None:
        await feed.stop()
    await nc.close()
    server.close()
    return elapsed


async def consume(
    nc: Client, engine: RiskEngine, metrics: Metrics, cb: Callable[[Msg], Awaitable[None]] | None
) -> Any:
    """Subscribe the tree's tick consumer (``cb`` instead when given); the feed, or None."""
    limits = {"pending_msgs_limit": -1, "pending_bytes_limit": -1}
    if cb is None and FEED:
        feed = TickFeed(nc, engine, metrics, nc.publish)  # type: ignore[arg-type]
        await feed.start()
        return feed
    if cb is None:
        watcher: Any = SimpleNamespace(confirmed=lambda: True)
        svc = WorkerService(nc, engine, watcher, "bench", None, metrics)  # type: ignore[arg-type]
        cb = svc._on_tick  # type: ignore[attr-defined]
    await nc.subscribe("market.tick.*", cb=cb, **limits)  # type: ignore[arg-type]
    return None


def stage_nats(
    engine: RiskEngine, cycle: list[tuple[str, bytes]], n: int, floor: bool
) -> Callable[[], tuple[float, float]]:
    """``n`` ticks through nats-py into the tree's consumer (a no-op one when ``floor``)."""
    full, rest = divmod(n, len(cycle))
    data = msg_frames(cycle) * full + msg_frames(cycle[:rest])
    return lambda: uvloop.run(through_nats(engine, data, n, floor))


def msg_frames(ticks: list[tuple[str, bytes]]) -> bytes:
    """The ticks as the server's ``MSG`` frames for sid 1."""
    return b"".join(
        b"MSG %s 1 %d\r\n%s\r\n" % (subject.encode(), len(data), data) for subject, data in ticks
    )


def main(argv: list[str] | None = None) -> int:
    """Time the stages (or run one, ``--only``, for callgrind); print µs per tick."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--ticks", type=int, default=100_000, help="ticks per pass")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per stage")
    parser.add_argument("--only", choices=STAGES, help="run this stage once, untimed")
    args = parser.parse_args(argv)
    now = wall_ms()
    engine = build_engine(args.accounts, args.positions, now_ms=now)
    cycle = tick_frames(args.positions, now)
    n = args.ticks
    setups: dict[str, Callable[[], Callable[[], object]]] = {
        "parse": lambda: stage_parse(repeated(cycle, n)),
        "apply": lambda: stage_apply(engine, cycle, n),
        "count": lambda: stage_count(Metrics(), n),
        "nats": lambda: stage_nats(engine, cycle, n, floor=False),
        "floor": lambda: stage_nats(engine, cycle, n, floor=True),
    }
    gc.disable()
    if args.only:
        setups[args.only]()()
        return 0
    runs = {name: setup() for name, setup in setups.items()}
    tree = "issue 16 (TickFeed)" if FEED else "before issue 16 (callback)"
    print(f"{tree}: {args.ticks:,} ticks per pass, median of {args.repeat} passes")
    for name in STAGES:
        times = []
        for _ in range(args.repeat):
            started, cpu = time.perf_counter(), time.process_time()
            result = runs[name]()
            if not isinstance(result, tuple):
                result = (time.perf_counter() - started, time.process_time() - cpu)
            times.append(result)
        us = statistics.median(t for t, _ in times) / args.ticks * 1e6
        cpu_us = statistics.median(c for _, c in times) / args.ticks * 1e6
        print(
            f"{name:<6} {us:7.2f} µs per tick ({1e6 / us:>11,.0f} ticks/s), "
            f"CPU {cpu_us:7.2f} µs ({1e6 / max(cpu_us, 1e-9):>11,.0f} ticks/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
