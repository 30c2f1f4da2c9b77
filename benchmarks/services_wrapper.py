"""CPU per check of the worker's NATS edge with and without the services protocol, in process.

The end-to-end figures (``benchmarks/services_cpu.py``) move by tens of µs with the machine's
load, far more than the few µs the services protocol may cost. This takes the sockets out:
:class:`~risk_worker.adapters.nats_service.WorkerService` is started on a fake client that
records each subscription's callback and whose ``publish`` only counts, and the callback of
``risk.check.order`` is called with real ``nats.aio.msg.Msg`` objects carrying ``dry_run``
limit orders of the bench's book (``risk_worker.bench.core``: 14 policies, 20 positions; every
one must be approved). A callback
that never suspends is run to completion with ``coroutine.send(None)``, without an event loop.

Modes ``srv`` (``RISK_SERVICES_PROTOCOL=true``: whatever the tree serves the ``$SRV`` verbs
with) and ``plain`` (``false``) alternate (A B A B ...); each round times ``--calls`` checks
and reports ns per check; the figure is the median of rounds. The difference is the cost of
the services protocol on a check, everything else (decode, decide, encode, reply guard) the
same. Time is the process's CPU time (``time.process_time_ns``), not wall time.

On a loaded machine even CPU time drifts by more than the difference; ``--callgrind`` counts
instructions instead: each mode runs under ``valgrind --tool=callgrind`` for ``--calls`` and
for twice as many checks, and the difference of the totals divided by ``--calls`` is the
instructions per check (start-up cancels out).

``--live`` makes the orders live (not dry runs): each approval reserves, so its reservation is
announced on ``risk.reservations`` as well (the fake client has nothing queued behind a request,
so every reservation goes out on its own: the sequential case, the least batching there is).

``--base DIR`` runs the same measurement once more with ``DIR`` first on ``PYTHONPATH`` (an
earlier tree, e.g. ``git archive <commit> risk_worker | tar -x -C DIR``) and prints both.

    .venv/bin/python benchmarks/services_wrapper.py [--calls 20000] [--rounds 7] [--base DIR]
    .venv/bin/python benchmarks/services_wrapper.py --callgrind [--calls 2000] [--base DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg
from nats.nuid import NUID

from risk_worker.adapters import check_handler
from risk_worker.adapters.check_handler import CheckHandler
from risk_worker.adapters.nats_service import CHECK_SUBJECT, WorkerService
from risk_worker.bench.core import (
    MAX_REQUEST_BYTES,
    WORKER_ID,
    NullSink,
    build_engine,
    request_bodies,
    wall_ms,
)

BOOK_MS = wall_ms()
LIVE = False
"""``--live``: the orders are not dry runs."""


class _Sub:
    """What the worker does with a subscription: drain it, ask its pending count."""

    pending_msgs = 0

    async def drain(self) -> None:
        """Nothing to drain."""

    async def unsubscribe(self) -> None:
        """Nothing to unsubscribe."""


class FakeClient:
    """The part of ``nats.aio.client.Client`` the worker's NATS edge calls, without a server."""

    def __init__(self) -> None:
        self._nuid = NUID()
        self.callbacks: dict[str, Callable[[Msg], Any]] = {}
        self.published = 0
        self.approved = 0

    async def subscribe(self, subject: str, queue: str = "", cb: Any = None, **_: Any) -> _Sub:
        """Record ``cb`` for ``subject``."""
        self.callbacks[subject] = cb
        return _Sub()

    async def publish(
        self, subject: str, payload: bytes = b"", reply: str = "", headers: Any = None
    ) -> None:
        """Count the replies (and the approvals among them)."""
        if subject.startswith("_INBOX."):
            self.published += 1
            if b'"approved":true' in payload:
                self.approved += 1

    async def flush(self, timeout: float = 0) -> None:  # noqa: ASYNC109
        """Nothing buffered."""


class _Counters:
    def event(self, kind: str, result: str = "applied") -> None: ...
    def invalid_event(self, kind: str, reason: str) -> None: ...
    def request_dropped(self, reason: str) -> None: ...
    def alert(self, level: str) -> None: ...


class _Watcher:
    def confirmed(self) -> bool:
        return True


def run(coro: Any) -> None:
    """Run a coroutine that never suspends to its end."""
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("the callback suspended")


def check_callback(protocol: bool, accounts: int) -> tuple[Callable[[Msg], Any], FakeClient]:
    """The ``risk.check.order`` callback of a worker started on a :class:`FakeClient`.

    The checks' clock stands still at the book's time (``check_handler.now_ms``), so marks
    never age and every run decides the same way however slowly it runs (callgrind)."""
    engine = build_engine(accounts=accounts, positions=20, policies=14, now_ms=BOOK_MS)
    check_handler.now_ms = lambda: BOOK_MS
    handler = CheckHandler(engine, lambda: True, WORKER_ID, MAX_REQUEST_BYTES, NullSink())
    nc = FakeClient()
    service = WorkerService(
        nc,  # type: ignore[arg-type]
        engine,
        _Watcher(),  # type: ignore[arg-type]
        WORKER_ID,
        handler,
        _Counters(),
        services_protocol=protocol,
    )
    run(service.start())
    return nc.callbacks[CHECK_SUBJECT], nc


def time_round(cb: Callable[[Msg], Any], nc: FakeClient, msgs: list[Msg]) -> float:
    """ns per call of ``cb`` over ``msgs`` (GC off), checking that each was answered."""
    before, approved = nc.published, nc.approved
    gc.collect()
    gc.disable()
    try:
        start = time.process_time_ns()
        for msg in msgs:
            run(cb(msg))
        elapsed = time.process_time_ns() - start
    finally:
        gc.enable()
    if nc.published - before != len(msgs) or nc.approved - approved != len(msgs):
        raise RuntimeError(f"{nc.approved - approved} approvals of {len(msgs)} checks")
    return elapsed / len(msgs)


def messages(nc: FakeClient, calls: int, accounts: int) -> list[Msg]:
    """``calls`` check requests as delivered messages, each with its own inbox (``LIVE``:
    not dry runs, so each approval reserves and is announced)."""
    bodies = request_bodies(5_000, accounts, market_every=0)  # limit orders: no mark age
    if LIVE:
        bodies = [b.replace(b'"dry_run":true', b'"dry_run":false') for b in bodies]
    return [
        Msg(nc, CHECK_SUBJECT, f"_INBOX.bench.{k}", bodies[k % len(bodies)])  # type: ignore[arg-type]
        for k in range(calls)
    ]


def measure(calls: int, rounds: int, accounts: int) -> dict[str, list[float]]:
    """ns per check of each mode, one figure per round, rounds alternating."""
    modes = {m: check_callback(m == "srv", accounts) for m in ("srv", "plain")}
    msgs = {m: messages(nc, calls, accounts) for m, (_, nc) in modes.items()}
    for m, (cb, nc) in modes.items():  # warm up
        time_round(cb, nc, msgs[m][: min(calls, 2_000)])
    out: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(rounds):
        for m, (cb, nc) in modes.items():
            out[m].append(time_round(cb, nc, msgs[m]))
    return out


def count(mode: str, calls: int, accounts: int) -> None:
    """Run ``calls`` checks of ``mode`` once, untimed (for callgrind)."""
    cb, nc = check_callback(mode == "srv", accounts)
    msgs = messages(nc, calls, accounts)
    gc.disable()
    for msg in msgs:
        run(cb(msg))
    if nc.approved != calls:
        raise RuntimeError(f"{nc.approved} approvals of {calls} checks")


def instructions(mode: str, calls: int, accounts: int, pythonpath: str) -> float:
    """Instructions per check of ``mode`` under callgrind (two runs, start-up cancelled)."""
    totals = []
    for n in (calls, 2 * calls):
        env = {**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
        argv += [__file__, "--count", mode, f"--calls={n}", f"--accounts={accounts}"]
        argv += ["--live"] * LIVE
        err = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stderr
        found = re.search(r"Collected : (\d+)", err)
        if found is None:
            raise RuntimeError(f"no instruction count from callgrind: {err[-500:]}")
        totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / calls


def report(label: str, figures: dict[str, list[float]], unit: str = "µs") -> None:
    """Print the median per check of each mode and the difference."""
    scale = 1000.0 if unit == "µs" else 1.0
    srv, plain = (statistics.median(figures[m]) / scale for m in ("srv", "plain"))
    spread = {m: (min(v) / scale, max(v) / scale) for m, v in figures.items()}
    print(
        f"{label}: srv {srv:8.2f} {unit}/check ({spread['srv'][0]:.2f}-{spread['srv'][1]:.2f}), "
        f"plain {plain:8.2f} {unit}/check "
        f"({spread['plain'][0]:.2f}-{spread['plain'][1]:.2f}), "
        f"services protocol costs {srv - plain:+.2f} {unit}/check ({srv / plain - 1:+.1%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--base", default="", help="an earlier source tree to measure too")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument("--live", action="store_true", help="live orders: each one reserves")
    parser.add_argument("--count", choices=("srv", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global LIVE  # noqa: PLW0603
    LIVE = args.live
    if args.count:
        count(args.count, args.calls, args.accounts)
        return
    trees = [(f"base ({args.base})", args.base)] if args.base else []
    trees.append(("this tree", ""))
    for label, path in trees:
        if args.callgrind:
            figures = {
                m: [instructions(m, args.calls, args.accounts, path)] for m in ("srv", "plain")
            }
            report(label, figures, "instructions")
        elif path:
            env = {**os.environ, "PYTHONPATH": path}
            argv = [sys.executable, __file__, "--json", f"--calls={args.calls}"]
            argv += [f"--rounds={args.rounds}", f"--accounts={args.accounts}"]
            argv += ["--live"] * LIVE
            out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            report(label, json.loads(out.stdout))
        else:
            figures = measure(args.calls, args.rounds, args.accounts)
            if args.json:
                print(json.dumps(figures))
                return
            report(label, figures)


if __name__ == "__main__":
    main()
