"""Instruments for the node-loss test: a paced check load, a ``/ready`` poller per worker and
the analysis of what they recorded (unconfirmed intervals, approvals inside them, recovery).

Every time here is the test process's monotonic clock (``loop.time()``, seconds). A reply's
decision happened somewhere between its request's send and its reply's receipt; a ``/ready``
sample's status held somewhere between its request and its response. The analysis only claims
what those windows prove.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client

from tests.helpers import wait_for
from tests.procs import CHECK_SUBJECT

_NO_REPLY = (nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError)
_HTTP_LINE = re.compile(r"HTTP metrics and probes on \S+:(\d+)")


@dataclass
class Check:
    """One check sent by the load: its times (loop clock, s) and the decoded reply or None."""

    order_id: str
    account: str
    denied_kind: bool
    """True for the order the Max Order Quantity policy denies, False for one approved."""
    sent: float
    received: float | None = None
    reply: dict[str, Any] | None = None


@dataclass
class Load:
    """Sends ``rate`` checks per second (dry runs) round-robin over ``accounts``, many in
    flight; every ``deny_every``-th order is 2 BTC (denied by policy), the others 0.1 BTC."""

    nc: Client
    accounts: list[str]
    rate: float = 1000.0
    deny_every: int = 4
    timeout: float = 3.0
    checks: list[Check] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set, then wait for every reply (or its timeout)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not stop.is_set():
            due = int((loop.time() - start) * self.rate)
            while len(self.checks) < due:
                self._send(len(self.checks), loop.time())
            await asyncio.sleep(0.005)
        await asyncio.gather(*self._tasks)

    def pending_requests(self) -> list[asyncio.Task[None]]:
        """The requests sent and not yet ended (reply, timeout or error)."""
        return list(self._tasks)

    def _send(self, n: int, now: float) -> None:
        denied = n % self.deny_every == 0
        check = Check(f"nl-{n}", self.accounts[n % len(self.accounts)], denied, now)
        self.checks.append(check)
        body = {
            "order_id": check.order_id,
            "account_id": check.account,
            "symbol": "BTCUSDT",
            "side": "BUY",
            "quantity": 2.0 if denied else 0.1,
            "price": 50_000.0,
            "dry_run": True,
        }
        task = asyncio.create_task(self._request(check, msgspec.json.encode(body)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _request(self, check: Check, body: bytes) -> None:
        try:
            msg = await self.nc.request(CHECK_SUBJECT, body, timeout=self.timeout)
        except _NO_REPLY:
            return
        check.received = asyncio.get_running_loop().time()
        check.reply = msgspec.json.decode(msg.data)


@dataclass(frozen=True)
class Sample:
    """One ``/ready`` answer: sent and received (loop clock, s), trading state confirmed."""

    sent: float
    received: float
    confirmed: bool


def http_port(log_path: Path) -> int | None:
    """The worker's HTTP port from its log line, or None before it is written."""
    found = _HTTP_LINE.search(log_path.read_text(errors="replace"))
    return int(found.group(1)) if found else None


async def wait_http_port(log_path: Path) -> int:
    """Wait (10 s) for the worker's HTTP port in its log."""
    await wait_for(lambda: http_port(log_path) is not None, 10.0, 0.05, f"no port in {log_path}")
    port = http_port(log_path)
    assert port is not None
    return port


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1.0) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 503: not ready, the body says why
        body = json.loads(exc.read())
    return bool(body["checks"]["trading_state"] == "confirmed")


async def poll_ready(port: int, samples: list[Sample], stop: asyncio.Event) -> None:
    """Ask the worker's ``/ready`` every 20 ms until ``stop``; a probe that fails (timeout,
    refused) is recorded as nothing (it proves no state)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        sent = loop.time()
        try:
            confirmed = await asyncio.to_thread(_ready, port)
        except (OSError, ValueError, KeyError):
            confirmed = None
        if confirmed is not None:
            samples.append(Sample(sent, loop.time(), confirmed))
        await asyncio.sleep(0.02)


def unconfirmed_intervals(samples: list[Sample]) -> list[tuple[float, float]]:
    """Intervals (s) in which the worker was unconfirmed without doubt: for each run of
    consecutive samples saying unconfirmed, from the first one's receipt to the last one's
    send (the status held at some instant of each sample's window; confirmation, once lost,
    comes back only through a confirmation the next sample would see)."""
    intervals: list[tuple[float, float]] = []
    run: list[Sample] = []
    for sample in [*sorted(samples, key=lambda s: s.sent), None]:
        if sample is not None and not sample.confirmed:
            run.append(sample)
            continue
        if len(run) >= 2 and run[0].received < run[-1].sent:
            intervals.append((run[0].received, run[-1].sent))
        run = []
    return intervals


def approvals_inside(
    checks: list[Check], worker_id: str, intervals: list[tuple[float, float]]
) -> list[Check]:
    """Approvals by ``worker_id`` whose whole request-to-reply window lies inside one of
    ``intervals`` (decided while unconfirmed: no processing time explains them)."""
    return [
        c
        for c in checks
        if c.reply is not None
        and c.received is not None
        and c.reply["approved"]
        and c.reply["worker_id"] == worker_id
        and any(lo <= c.sent and c.received <= hi for lo, hi in intervals)
    ]


def last_unanswered_after(checks: list[Check], since: float) -> float | None:
    """Send time of the last check sent after ``since`` that got no reply, or None."""
    missed = [c.sent for c in checks if c.sent >= since and c.reply is None]
    return max(missed) if missed else None


def first_approval_after(checks: list[Check], since: float, worker_id: str) -> float | None:
    """Receipt time of the first approval by ``worker_id`` of a check sent after ``since``."""
    times = [
        c.received
        for c in checks
        if c.sent >= since
        and c.received is not None
        and c.reply is not None
        and c.reply["approved"]
        and c.reply["worker_id"] == worker_id
    ]
    return min(times) if times else None
