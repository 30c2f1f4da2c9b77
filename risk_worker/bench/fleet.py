"""The worker side of a round: N ``risk-worker run`` processes on the bench's nats-server.

Each instance has its own ``RISK_WORKER_ID`` and HTTP port and consumes every event, so all
hold the same book; checks reach one of them through the queue group and the account's owner
decides (``adapters.membership``: a non-owner forwards on ``risk.check.owner.<id>``). Before a
round is measured every instance must be ready, must approve the loaded book when asked
directly on its owner subject (its own book, no forwarding), and — with N ≥ 2 — the membership
must have converged (:func:`wait_converged`). The instances are read from outside through
their ``/metrics``: checks decided and checks forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client

from risk_worker.adapters.membership import OWNER_SUBJECT_PREFIX
from risk_worker.bench.config import BenchConfig
from risk_worker.bench.load import (
    CHECK_SUBJECT,
    NO_REPLY,
    BenchError,
    load_book,
    probe_body,
    wait_answering,
    wait_approved,
)
from risk_worker.bench.procs import http_get, spawn, stop, tail, wait_ready, worker_env
from risk_worker.bench.varseed import seed_redis
from risk_worker.devstack.nats_server import free_port

RISK_WORKER = Path(sys.executable).parent / "risk-worker"
START_TIMEOUT_S = 30.0
PROBES_PER_ACCOUNT = 12
"""Convergence probes per account per window: a receiver that does not see the owner is hit
by none of them with probability (1 - 1/N)^12 per account (2.4e-4 at N = 2)."""
_FORWARDED = re.compile(rb"^risk_checks_forwarded_total ([0-9.e+]+)$", re.MULTILINE)
_DECIDED = re.compile(rb"^risk_order_checks_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


class _Owner(msgspec.Struct):
    worker_id: str = ""


_OWNER = msgspec.json.Decoder(_Owner)


@dataclass(frozen=True)
class Fleet:
    """The running instances, index-aligned: ids, processes, HTTP ports, logs."""

    ids: tuple[str, ...]
    procs: tuple[asyncio.subprocess.Process, ...]
    ports: tuple[int, ...]
    logs: tuple[Path, ...]

    @property
    def pids(self) -> list[int]:
        """The instances' process ids."""
        return [p.pid for p in self.procs]

    async def alive(self, step: Coroutine[Any, Any, None]) -> None:
        """Await ``step``, failing fast if any instance exits meanwhile.

        Raises:
            BenchError: an instance exited first (the message carries its log's tail).
        """
        task = asyncio.ensure_future(step)
        exits = [asyncio.ensure_future(p.wait()) for p in self.procs]
        await asyncio.wait({task, *exits}, return_when=asyncio.FIRST_COMPLETED)
        for e in exits:
            e.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            i = next(i for i, p in enumerate(self.procs) if p.returncode is not None)
            code = self.procs[i].returncode
            raise BenchError(f"{self.ids[i]} exited with code {code}{tail(self.logs[i])}")
        task.result()

    async def stop(self) -> None:
        """Stop every instance (SIGTERM: each drains and withdraws its membership)."""
        await asyncio.gather(*(stop(p) for p in self.procs))


def worker_ids(n: int) -> tuple[str, ...]:
    """``bench-worker`` alone, else ``bench-worker-1`` … ``bench-worker-<n>``."""
    return ("bench-worker",) if n == 1 else tuple(f"bench-worker-{i + 1}" for i in range(n))


async def _metric(port: int, pattern: re.Pattern[bytes]) -> float:
    try:
        status, body = await http_get(port, "/metrics")
    except (OSError, TimeoutError) as exc:
        raise BenchError(f"cannot read the worker's /metrics on port {port}: {exc!r}") from exc
    if status != 200:
        raise BenchError(f"the worker's /metrics on port {port} answered HTTP {status}")
    return sum(float(v) for v in pattern.findall(body))


async def forwarded_total(ports: Sequence[int]) -> float:
    """``risk_checks_forwarded_total`` summed over the instances on ``ports``."""
    return sum(await asyncio.gather(*(_metric(p, _FORWARDED) for p in ports)))


async def decided(ports: Sequence[int]) -> list[float]:
    """Each instance's ``risk_order_checks_total`` (every result and reason)."""
    return list(await asyncio.gather(*(_metric(p, _DECIDED) for p in ports)))


async def _window(nc: Client, accounts: Sequence[str], positions: int) -> dict[str, set[str]]:
    """Probe every account :data:`PROBES_PER_ACCOUNT` times: account → answering worker ids."""
    seen: dict[str, set[str]] = {a: set() for a in accounts}
    for _ in range(PROBES_PER_ACCOUNT):
        for a in accounts:
            msg = await nc.request(CHECK_SUBJECT, probe_body(a, positions), timeout=1.0)
            seen[a].add(_OWNER.decode(msg.data).worker_id)
    return seen


async def wait_converged(
    nc: Client,
    fleet: Fleet,
    positions: int,
    timeout: float,  # noqa: ASYNC109
) -> None:
    """Wait until every instance sees every other as a live member.

    Probes ``16 × N`` made-up accounts (``CONVERGE-<i>``, not in the book: denied
    ``unknown_account``, but routed to their owner like any other) through the queue group,
    in windows. Converged when, in one window, each account was answered by one instance only
    (its owner, whoever received it), every instance answered some account, and every instance
    forwarded at least once. An instance that does not see a member decides (or misroutes) that
    member's accounts itself, so they get two answerers; one that nobody sees answers none.

    Raises:
        BenchError: not converged within ``timeout`` seconds (the last window is in the message).
    """
    probe = [f"CONVERGE-{i}" for i in range(16 * len(fleet.ids))]
    deadline = time.monotonic() + timeout
    last = "no window completed"
    while time.monotonic() < deadline:
        before = await asyncio.gather(*(forwarded_total([p]) for p in fleet.ports))
        try:
            seen = await _window(nc, probe, positions)
        except NO_REPLY as exc:
            last = repr(exc)
            continue
        after = await asyncio.gather(*(forwarded_total([p]) for p in fleet.ports))
        answered = set().union(*seen.values())
        forwarding = [a > b for a, b in zip(after, before, strict=True)]
        one_owner = all(len(w) == 1 for w in seen.values())
        if one_owner and answered == set(fleet.ids) and all(forwarding):
            return
        split = {a: sorted(w) for a, w in seen.items() if len(w) > 1}
        last = f"answered by {sorted(answered)}, split {split}, forwarding {forwarding}"
        await asyncio.sleep(0.1)
    raise BenchError(f"the {len(fleet.ids)} workers' membership did not converge: {last}")


async def start_fleet(
    nc: Client, url: str, cfg: BenchConfig, tmp: Path, redis_url: str = ""
) -> tuple[Fleet, dict[str, float]]:
    """Start ``cfg.instances`` workers, load the book, wait until every one approves it and
    (N ≥ 2) the membership converged: (fleet, times of the slowest instance, s).

    With ``redis_url`` the instances keep their snapshots there; with ``cfg.var`` (``--var``) too,
    the shared Redis is first emptied and seeded with the VaR history, and each instance must
    approve the loaded book with a VaR.

    Raises:
        BenchError: an instance exited, was not ready, did not approve or did not converge.
    """
    if redis_url and cfg.var:
        await seed_redis(redis_url, cfg.positions)
    ids = worker_ids(cfg.instances)
    ports = tuple(free_port() for _ in ids)
    logs = tuple(tmp / f"{wid}.log" for wid in ids)
    started = time.monotonic()
    procs: list[asyncio.subprocess.Process] = []
    for wid, port, log in zip(ids, ports, logs, strict=True):
        env = worker_env(url, tmp / "policies.toml", port, redis_url, wid, cfg.var)
        procs.append(await spawn([str(RISK_WORKER), "run"], env, log))
    fleet = Fleet(ids, tuple(procs), ports, logs)
    try:
        for port in ports:
            await fleet.alive(wait_ready(port, START_TIMEOUT_S))
        ready = time.monotonic() - started
        await fleet.alive(wait_answering(nc, START_TIMEOUT_S, cfg.positions))
        serving = time.monotonic() - started
        await load_book(nc, cfg.accounts, cfg.positions)
        for wid in ids:
            subject = OWNER_SUBJECT_PREFIX + wid
            await fleet.alive(
                wait_approved(nc, cfg.accounts, cfg.positions, START_TIMEOUT_S, cfg.var, subject)
            )
        loaded = time.monotonic() - started
        if len(ids) > 1:
            await fleet.alive(wait_converged(nc, fleet, cfg.positions, START_TIMEOUT_S))
    except BaseException:
        await fleet.stop()
        raise
    times = {
        "start_to_ready_s": ready,
        "start_to_serving_s": serving,
        "start_to_book_loaded_s": loaded,
        "start_to_converged_s": time.monotonic() - started,
    }
    return fleet, times
