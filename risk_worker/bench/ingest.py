"""Tick ingestion: the highest ``market.tick.*`` rate one worker absorbs without falling behind.

A ladder of rates; at each, the tick generator (:mod:`risk_worker.bench.ticks`, its own
process) publishes for a fixed time and exits after flushing. The worker's own count of applied
ticks (``risk_events_total{kind="market.tick"}`` on its ``/metrics``) is then polled: a rate is
*absorbed* when the generator reached it (≥ 97 %) and the worker had applied every tick within
:data:`CATCH_UP_S` of the generator's exit, i.e. its backlog never exceeded about 0.1 s of
input. The ladder stops at the first rate that is not absorbed; its figure is the rate the
worker actually applied while overloaded (its saturation rate).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Callable, Sequence

from risk_worker.bench.load import BenchError
from risk_worker.bench.procs import TICKS_MODULE, http_get

CATCH_UP_S = 0.1
"""A step is absorbed when the last tick is applied within this long after the generator ends."""
WAIT_LIMIT_S = 30.0
"""How long to wait for an overloaded worker to drain its backlog before the next step."""
_TICKS = re.compile(rb'^risk_events_total\{kind="market\.tick"\} ([0-9.e+]+)$', re.MULTILINE)


async def applied_ticks(port: int) -> int:
    """The worker's count of applied ticks, read from ``http://127.0.0.1:<port>/metrics``.

    Raises:
        BenchError: the endpoint did not answer or has no tick counter.
    """
    try:
        status, body = await http_get(port, "/metrics")
    except (OSError, TimeoutError) as exc:
        raise BenchError(f"cannot read the worker's /metrics on port {port}: {exc!r}") from exc
    match = _TICKS.search(body) if status == 200 else None
    if match is None:
        raise BenchError(f"the worker's /metrics (HTTP {status}) has no market.tick counter")
    return int(float(match.group(1)))


async def wait_applied(port: int, base: int, published: int, timeout: float) -> int:  # noqa: ASYNC109
    """Poll the worker until it has applied ``published`` ticks since its count was ``base``.

    Returns:
        How many it had applied since ``base`` when it caught up or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    applied = await applied_ticks(port) - base
    while applied < published and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        applied = await applied_ticks(port) - base
    return applied


async def run_ticks(url: str, positions: int, rate: float, seconds: float) -> tuple[int, float]:
    """Run the tick generator for ``seconds`` at ``rate``; (ticks published, seconds taken).

    Raises:
        BenchError: the generator failed.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        TICKS_MODULE,
        url,
        str(positions),
        str(rate),
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise BenchError(f"the tick generator exited {proc.returncode}: {err.decode()[-500:]}")
    report = json.loads(out.decode().strip().splitlines()[-1])
    return int(report["published"]), float(report["seconds"])


async def ingest_step(
    url: str, port: int, positions: int, rate: float, seconds: float
) -> dict[str, float]:
    """One step of the ladder at ``rate`` ticks/s.

    Returns:
        ``rate``, ``published``, ``published_rate``, ``catch_up_s`` (generator exit → last tick
        applied; ``WAIT_LIMIT_S`` when never), ``applied_rate`` (ticks applied by the time the
        generator exited ÷ its publishing time), ``absorbed`` (1.0 or 0.0) and
        ``generator_bound`` (1.0 when the generator itself fell short of the rate: that step
        says nothing about the worker).
    """
    before = await applied_ticks(port)
    published, elapsed = await run_ticks(url, positions, rate, seconds)
    ended = time.monotonic()
    at_end = await applied_ticks(port) - before
    applied = await wait_applied(port, before, published, WAIT_LIMIT_S)
    catch_up = time.monotonic() - ended if applied >= published else WAIT_LIMIT_S
    published_rate = published / elapsed if elapsed > 0 else 0.0
    reached = published_rate >= 0.97 * rate
    absorbed = reached and catch_up <= CATCH_UP_S
    return {
        "generator_bound": 0.0 if reached else 1.0,
        "rate": rate,
        "published": float(published),
        "published_rate": published_rate,
        "catch_up_s": catch_up,
        "applied_rate": min(at_end, published) / elapsed if elapsed > 0 else 0.0,
        "absorbed": 1.0 if absorbed else 0.0,
    }


async def tick_ladder(
    url: str,
    port: int,
    positions: int,
    rates: Sequence[float],
    seconds: float,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Climb ``rates`` until one is not absorbed (see the module docstring).

    Returns:
        ``max_absorbed_rate`` (ticks/s; 0 when even the first failed), ``saturation_rate``
        (ticks/s applied at the first failed step, None when every step passed), ``steps``.
    """
    steps: list[dict[str, float]] = []
    for rate in rates:
        if on_step is not None:
            on_step(f"tick ingestion: {rate:,.0f} ticks/s")
        step = await ingest_step(url, port, positions, rate, seconds)
        steps.append(step)
        if not step["absorbed"]:
            break
    passed = [s["rate"] for s in steps if s["absorbed"]]
    failed = [s for s in steps if not s["absorbed"]]
    return {
        "max_absorbed_rate": max(passed, default=0.0),
        "saturation_rate": failed[0]["applied_rate"] if failed else None,
        "step_seconds": seconds,
        "steps": steps,
    }
