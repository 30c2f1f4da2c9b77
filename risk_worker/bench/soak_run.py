"""The soak: two workers on a 3-node cluster under checks, ticks and fills for a given time,
through a fault schedule, then the figures (:mod:`risk_worker.bench.soak_report`).

The faults, spread over the run (fractions of it): a NATS node killed (-9: the one leading the
most of the JetStream meta group, the bucket's stream and ``RISK_EVENTS``) and restarted;
PostgreSQL stopped, then started; Redis stopped, then started; a worker SIGKILLed and started
again. During each, an account is HALTed (a trip written during the fault). Phases are the
stretches between these events, named after the event that began them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import nats
import nats.errors
from nats.aio.client import Client

from risk_worker.bench.core import account_id
from risk_worker.bench.load import CHECK_SUBJECT, load_book, wait_approved
from risk_worker.bench.procs import TickStream
from risk_worker.bench.soak_load import CheckLoad, CheckTally, poll_ready, publish_fills
from risk_worker.bench.soak_stack import (
    BUCKET,
    SoakStack,
    SoakWorker,
    issue_trip,
    leader_roles,
)
from risk_worker.bench.soak_stats import (
    Timeline,
    UnconfirmedIntervals,
    approvals_inside,
    vm_rss_mb,
)

SINK_DEADLINE_S = 90.0
"""How long the end waits for the audit sink to write every denial's row."""


@dataclass(frozen=True)
class SoakConfig:
    """What to run: ``seconds`` of load; rates per second; the book's size; ``outage_s``
    scales every fault's length (PostgreSQL is down ``outage_s``, the others less)."""

    seconds: float = 600.0
    check_rate: float = 500.0
    tick_rate: float = 2_000.0
    fill_rate: float = 20.0
    accounts: int = 200
    positions: int = 10
    workers: int = 2
    outage_s: float = 30.0


@dataclass
class SoakResult:
    """Everything the report shows (see :func:`risk_worker.bench.soak_report.render`)."""

    config: SoakConfig
    timeline: Timeline
    tally: CheckTally
    unconfirmed: dict[str, UnconfirmedIntervals]
    approvals_unconfirmed: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    sink_wait_s: float = 0.0
    trips: dict[str, str] = field(default_factory=dict)
    """Tripped account → the reason its check got at the end (in force: emergency_stop_active)."""
    trip_failures: list[str] = field(default_factory=list)
    """Trips that could not be written (each the error)."""
    rss_start: dict[str, float] = field(default_factory=dict)
    rss_end: dict[str, float] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    ticks: int = 0
    fills: int = 0
    killed_node: str = ""
    exit_codes: dict[str, int | None] = field(default_factory=dict)


async def _quiet(exc: Exception) -> None:
    """Error callback of the soak's client: a lost node's errors are expected."""


class _Soak:
    def __init__(self, cfg: SoakConfig, stack: SoakStack, nc: Client) -> None:
        self.cfg, self.stack, self.nc = cfg, stack, nc
        self.timeline = Timeline()
        self.stop = asyncio.Event()
        self.trip_accounts: list[str] = []
        self.trip_tasks: list[asyncio.Task[float]] = []
        self.killed_node = ""

    def phase(self, name: str) -> None:
        self.timeline.begin(name, time.monotonic())

    def trip(self, why: str) -> None:
        """HALT a fresh account (beyond the load's) in the background."""
        account = account_id(self.cfg.accounts + len(self.trip_accounts))
        self.trip_accounts.append(account)
        self.trip_tasks.append(asyncio.create_task(issue_trip(self.nc, account, why)))

    async def kill_node(self) -> None:
        cluster = self.stack.cluster
        roles = await leader_roles(self.nc, cluster)
        index = max(roles, key=lambda i: (len(roles[i]), f"KV_{BUCKET}" in roles[i]))
        name = cluster.server_names[index]
        self.killed_node = f"{name} (leading {', '.join(roles[index]) or 'nothing'})"
        cluster.kill_node(index)
        name = cluster.server_names[index]
        self.phase(f"{name} killed")
        self.trip("soak: during the NATS node loss")
        await asyncio.sleep(self.cfg.outage_s * 2 / 3)
        await asyncio.to_thread(cluster.start_node, index, 60.0)
        self.phase(f"{name} back")

    async def postgres_down(self) -> None:
        await asyncio.to_thread(self.stack.postgres.stop)
        self.phase("postgres stopped")
        self.trip("soak: during the PostgreSQL outage")
        await asyncio.sleep(self.cfg.outage_s)
        await asyncio.to_thread(self.stack.postgres.start, 60.0)
        self.phase("postgres back")

    async def redis_down(self) -> None:
        await asyncio.to_thread(self.stack.redis.stop)
        self.phase("redis stopped")
        self.trip("soak: during the Redis outage")
        await asyncio.sleep(self.cfg.outage_s * 2 / 3)
        await asyncio.to_thread(self.stack.redis.start, 30.0)
        self.phase("redis back")

    async def worker_killed(self) -> None:
        worker = self.stack.workers[-1]
        await worker.kill()
        self.phase(f"{worker.worker_id} killed")
        self.trip("soak: while a worker is down")
        await asyncio.sleep(self.cfg.outage_s / 6)
        await worker.start()
        self.phase(f"{worker.worker_id} back")

    async def schedule(self, started: float) -> None:
        """The faults at their fractions of the run, then the end."""
        faults: list[tuple[float, Callable[[], Awaitable[None]]]] = [
            (0.12, self.kill_node),
            (0.35, self.postgres_down),
            (0.55, self.redis_down),
            (0.75, self.worker_killed),
        ]
        for fraction, fault in faults:
            await asyncio.sleep(max(0.0, started + fraction * self.cfg.seconds - time.monotonic()))
            await fault()
        await asyncio.sleep(max(0.0, started + self.cfg.seconds - time.monotonic()))
        self.phase("end")
        self.stop.set()


async def _trips_in_force(nc: Client, accounts: list[str]) -> dict[str, str]:
    """Check each tripped account (a small order): the reason it is denied, or what it got."""
    out: dict[str, str] = {}
    for account in accounts:
        body = msgspec.json.encode(
            {"order_id": f"soak-trip-{account}", "account_id": account, "symbol": "SYM000",
             "side": "BUY", "quantity": 1.0, "price": 50.0, "dry_run": True}
        )  # fmt: skip
        out[account] = "no reply"
        for _ in range(20):
            try:
                reply = msgspec.json.decode((await nc.request(CHECK_SUBJECT, body, 1.0)).data)
            except (nats.errors.Error, TimeoutError):
                await asyncio.sleep(0.25)
                continue
            out[account] = "approved" if reply["approved"] else str(reply["rejection_reason"])
            break
    return out


async def _wait_sink(stack: SoakStack, tally: CheckTally) -> tuple[dict[str, int], float]:
    """Poll PostgreSQL until every denial has its rows (or :data:`SINK_DEADLINE_S`)."""
    started = time.monotonic()
    rows: dict[str, int] = {}
    while time.monotonic() - started < SINK_DEADLINE_S:
        with contextlib.suppress(Exception):  # PostgreSQL restarting: poll again
            rows = await stack.rows_by_order()
        if all(rows.get(k, 0) >= n for k, n in tally.denied.items()):
            await asyncio.sleep(1.0)  # a doubled row would arrive about now
            with contextlib.suppress(Exception):  # PostgreSQL restarting: poll again
                rows = await stack.rows_by_order()
            break
        await asyncio.sleep(0.5)
    return rows, time.monotonic() - started


def _rss(workers: list[SoakWorker]) -> dict[str, float]:
    return {w.worker_id: vm_rss_mb(w.pid) for w in workers}


async def run_soak(cfg: SoakConfig, data_dir: Path, say: Callable[[str], None]) -> SoakResult:
    """Run the soak in ``data_dir`` (servers' stores, worker logs); ``say`` gets progress lines.

    Raises:
        BenchError: a server or worker did not start.
    """
    stack = SoakStack(data_dir)
    await stack.start()
    say(f"cluster {stack.cluster.url}, postgres, redis up in {data_dir}")
    try:
        workers = await stack.start_workers(cfg.workers)
        nc = await nats.connect(
            stack.cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
            error_cb=_quiet, pending_size=64 * 1024 * 1024,
        )  # fmt: skip
        try:
            result = await _run(cfg, stack, workers, nc, say)
        finally:
            await nc.close()
    finally:
        say("stopping")
        codes = await stack.stop()
    result.exit_codes = codes
    return result


async def _run(
    cfg: SoakConfig, stack: SoakStack, workers: list[SoakWorker], nc: Client,
    say: Callable[[str], None],
) -> SoakResult:  # fmt: skip
    await load_book(nc, cfg.accounts + 10, cfg.positions)
    await wait_approved(nc, cfg.accounts, cfg.positions, 60.0)
    ticks = TickStream(stack.cluster.url, cfg.positions, cfg.tick_rate)
    await ticks.start()
    soak = _Soak(cfg, stack, nc)
    soak.phase("steady")
    load = CheckLoad(nc, soak.timeline, cfg.check_rate, cfg.accounts, cfg.positions)
    trackers = {w.worker_id: UnconfirmedIntervals() for w in workers}
    result = SoakResult(cfg, soak.timeline, load.tally, trackers, rss_start=_rss(workers))
    say(f"{len(workers)} workers ready; load for {cfg.seconds:.0f} s")
    started = time.monotonic()
    fills = publish_fills(nc, cfg.fill_rate, cfg.accounts, cfg.positions, soak.stop)
    polls = [poll_ready(w.port, trackers[w.worker_id], soak.stop) for w in workers]
    tasks = [asyncio.create_task(c) for c in (load.run(soak.stop), fills, *polls)]
    try:
        await soak.schedule(started)
    finally:
        soak.stop.set()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        result.ticks = await ticks.stop()
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome
    result.fills = int(done[1]) if isinstance(done[1], int) else 0
    result.rss_end = _rss(workers)
    result.restarts = {w.worker_id: w.starts - 1 for w in workers}
    result.killed_node = soak.killed_node
    for worker_id, tracker in trackers.items():
        intervals = tracker.close()
        result.approvals_unconfirmed[worker_id] = approvals_inside(
            load.tally.approvals.get(worker_id, []), intervals
        )
    stray = set(load.tally.approvals) - set(trackers)
    for worker_id in stray:  # an approval from a worker nobody polled: cannot be vouched for
        result.approvals_unconfirmed[worker_id] = len(load.tally.approvals[worker_id])
    written = await asyncio.gather(*soak.trip_tasks, return_exceptions=True)
    result.trip_failures = [str(w) for w in written if isinstance(w, BaseException)]
    issued = [a for a, w in zip(soak.trip_accounts, written, strict=True) if isinstance(w, float)]
    say("load stopped; checking trips and waiting for the audit sink")
    result.trips = await _trips_in_force(nc, issued)
    result.rows, result.sink_wait_s = await _wait_sink(stack, load.tally)
    return result
