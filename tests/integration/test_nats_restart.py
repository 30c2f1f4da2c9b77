"""A worker subprocess across a nats-server crash and restart (same port, same JetStream store)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import NamedTuple

import nats.errors
import pytest

from risk_worker.adapters import operator
from risk_worker.adapters.kv_bucket import open_bucket, write_state
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.trading_state import GLOBAL_KEY, StateValue
from risk_worker.domain.types import StateSource, TradingState
from risk_worker.errors import TradingStateError
from tests.helpers import connect, wait_for
from tests.procs import Workers, check, fund, unique, wait_approved

pytestmark = pytest.mark.timeout(60)

OUTAGE_S = 2.0
SAFE_DENIALS = {"trading_state_unknown", "emergency_stop_active"}


class Record(NamedTuple):
    """One check: when it was sent and answered (monotonic), and the outcome.

    ``approved`` is None when no reply came (``reason`` is then the exception's name).
    """

    sent: float
    replied: float
    approved: bool | None
    reason: str | None


async def quiet(exc: Exception) -> None:
    """Error callback of the test's client: the outage's connection errors are expected."""


async def trip_global(url: str, bucket: str, timeout: float = 5.0) -> float:  # noqa: ASYNC109
    """Write HALTED on the global scope from a fresh connection, retrying until JetStream
    answers; the monotonic time at which the write returned."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            nc = await operator.connect(url, connect_timeout=1.0)
            try:
                kv = await open_bucket(nc.jetstream(timeout=1.0), bucket)
                value = StateValue(
                    TradingState.HALTED,
                    "server restart drill",
                    "pytest",
                    time.time_ns() // 1_000_000,
                    StateSource.OPERATOR,
                )
                await write_state(kv, GLOBAL_KEY, value)
                return time.monotonic()
            finally:
                await nc.close()
        except (OSError, nats.errors.Error, TradingStateError):
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.02)


async def test_server_restart_when_worker_running_then_reconnects_and_never_approves_unconfirmed(
    own_nats_server: NatsServer, workers: Workers
) -> None:
    server = own_nats_server
    worker = workers.start(server.url, RISK_STATE_MAX_AGE="1", RISK_STATE_CONFIRM_INTERVAL="0.2")
    nc = await connect(server.url, error_cb=quiet)
    try:
        await worker.wait_serving(nc)
        account = unique("ACC-")
        await fund(nc, account)
        await wait_approved(nc, account)

        records: list[Record] = []
        stop = asyncio.Event()

        def first(pred: Callable[[Record], object]) -> Record | None:
            return next((r for r in records if pred(r)), None)

        async def checker() -> None:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    reply = await check(nc, account, timeout=0.25)
                except (nats.errors.Error, TimeoutError, OSError) as exc:
                    records.append(Record(sent, time.monotonic(), None, type(exc).__name__))
                    await asyncio.sleep(0.01)  # no responders fails at once: do not spin
                    continue
                records.append(
                    Record(sent, time.monotonic(), reply["approved"], reply["rejection_reason"])
                )
                await asyncio.sleep(0.002)

        task = asyncio.create_task(checker())
        try:
            await wait_for(
                lambda: sum(1 for r in records if r.approved) >= 10,
                5.0,
                message="no approvals before the outage",
            )
            t_kill = time.monotonic()
            server.kill()
            await asyncio.sleep(OUTAGE_S)  # the outage itself: time passing is the condition
            await asyncio.to_thread(server.start)
            t_restart = time.monotonic()
            t_trip = await trip_global(server.url, worker.bucket)

            def stopped() -> bool:
                approved = first(lambda r: r.sent > t_trip and r.approved)
                if approved is not None:  # fail at once, with the figure, not at the deadline
                    raise AssertionError(
                        f"approved a check sent {(approved.sent - t_trip) * 1000:.1f} ms after "
                        "the trip was written"
                    )
                return (
                    first(lambda r: r.sent > t_trip and r.reason == "emergency_stop_active")
                    is not None
                )

            await wait_for(
                stopped,
                15.0,
                0.02,
                "the worker never denied emergency_stop_active after the restart",
            )
            t_clear = time.monotonic()
            clear_nc = await operator.connect(server.url)
            try:
                cleared = await operator.clear(
                    clear_nc, worker.bucket, "drill over", "pytest", None
                )
            finally:
                await clear_nc.close()
            assert cleared is not None
            t_cleared = time.monotonic()
            await wait_for(
                lambda: first(lambda r: r.sent > t_cleared and r.approved),
                10.0,
                0.02,
                "never approved again after the clear",
            )
        finally:
            stop.set()
            await task

        assert worker.returncode is None, f"worker died{worker.tail()}"
        before = [r for r in records if r.sent < t_kill]
        assert any(r.approved for r in before)
        # From the crash until the clear, nothing the worker could not confirm is approved.
        unsafe = [
            r
            for r in records
            if t_kill < r.sent < t_clear
            and r.approved is not None
            and not (r.approved and r.sent < t_trip)
            and r.reason not in SAFE_DENIALS
        ]
        assert not unsafe, f"unsafe replies during the outage or the trip: {unsafe[:5]}"
        approved_under_trip = [r for r in records if t_trip < r.sent < t_clear and r.approved]
        assert not approved_under_trip, (
            f"{len(approved_under_trip)} approvals sent after the trip was written, e.g. "
            f"{[round((r.sent - t_trip) * 1000, 1) for r in approved_under_trip[:5]]} ms after"
        )
        first_reply = first(lambda r: r.replied > t_restart and r.approved is not None)
        assert first_reply is not None, "the worker never answered after the restart"
        first_stop = first(lambda r: r.sent > t_trip and r.reason == "emergency_stop_active")
        assert first_stop is not None
        unknown = [r for r in records if r.sent > t_kill and r.reason == "trading_state_unknown"]
        no_reply = [r for r in records if t_kill < r.sent < t_restart and r.approved is None]
        print(
            f"\nrestart: server healthy {(t_restart - t_kill) * 1000:.0f} ms after the kill; "
            f"trip written {(t_trip - t_restart) * 1000:.0f} ms after restart; "
            f"first reply {(first_reply.replied - t_restart) * 1000:.0f} ms after restart "
            f"({first_reply.reason or 'approved'}); first emergency_stop_active "
            f"{(first_stop.replied - t_restart) * 1000:.0f} ms after restart "
            f"({(first_stop.replied - t_trip) * 1000:.0f} ms after the trip); "
            f"{len(unknown)} trading_state_unknown, {len(no_reply)} unanswered during the outage"
        )
    finally:
        await nc.close()
