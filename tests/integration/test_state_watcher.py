"""The trading-state copy stays honest when its KV watcher goes blind (nats.py #510)."""

from __future__ import annotations

import asyncio
import shutil
import time

import nats.errors

from risk_worker.adapters import operator
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.trading_state import GLOBAL_KEY
from risk_worker.domain.types import TradingState
from risk_worker.errors import TradingStateError
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory

INTERVAL = 0.3


async def test_watcher_when_blind_then_trip_enforced_within_one_confirm_interval(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(state_confirm_interval=INTERVAL, state_max_age=2.0)
    await h.pnl("BLIND1", 100_000.0)
    await h.settle()
    watcher = h.worker.watcher
    assert watcher is not None and watcher._watcher is not None
    # Fault injection: the watcher's subscription stops delivering without any error, which is
    # what a server restart did to nats-py's KV watcher.
    await watcher._watcher._sub.unsubscribe()
    await operator.trip(h.nc, h.settings.kv_bucket, TradingState.HALTED, "test", "pytest", None)
    loop = asyncio.get_running_loop()
    tripped_at = loop.time()
    replies: list[tuple[float, dict[str, object]]] = []

    async def enforced() -> bool:
        reply = await h.check("BLIND1", "BTCUSDT", "BUY", 0.1, 50_000.0, dry_run=True)
        replies.append((loop.time() - tripped_at, reply))
        return reply["rejection_reason"] == "emergency_stop_active"

    await wait_for(enforced, 5.0, 0.01, "the trip was never enforced")
    approved_after = [t for t, r in replies if r["approved"]]
    reasons = {r["rejection_reason"] for _, r in replies if not r["approved"]}
    assert reasons <= {"trading_state_unknown", "emergency_stop_active"}
    # Without the lag check the copy would stay confirmed-but-stale for RISK_STATE_MAX_AGE (2 s).
    assert not approved_after or max(approved_after) < INTERVAL + 0.2, approved_after
    print(
        f"\napprovals until {max(approved_after, default=0):.3f} s after the trip; "
        f"enforced after {replies[-1][0]:.3f} s"
    )


async def _operator_trip_when_reachable(url: str, bucket: str, timeout: float = 10.0) -> int:  # noqa: ASYNC109
    """``emergency trip --reason x --by y`` (global) from a fresh connection, retried until the
    restarted server answers; the revision written."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            nc = await operator.connect(url, connect_timeout=1.0)
            try:
                return await operator.trip(nc, bucket, TradingState.HALTED, "x", "y", None)
            finally:
                await nc.close()
        except (OSError, nats.errors.Error, TradingStateError):
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.05)


async def test_watcher_when_bucket_recreated_at_lower_revision_then_new_halt_enforced(
    own_nats_server: NatsServer, harness_factory: HarnessFactory
) -> None:
    """Issue 10, item 1: trip and clear (global at revision N), kill -9 nats-server, delete its
    JetStream store, restart it on the same port, trip again (revision 1 < N): the running
    worker must deny, and never say its copy is confirmed while it holds the stale ACTIVE."""
    server = own_nats_server
    h = await harness_factory(url=server.url, state_confirm_interval=INTERVAL, state_max_age=1.0)
    bucket = h.settings.kv_bucket
    await h.pnl("RECREATED1", 100_000.0)
    await h.settle()
    for _ in range(3):
        await operator.trip(h.nc, bucket, TradingState.HALTED, "drill", "pytest", None)
        await operator.clear(h.nc, bucket, "drill over", "pytest", None)
    states = h.worker.engine.states
    await wait_for(lambda: states.revision(GLOBAL_KEY) >= 6, message="clear never seen")
    held = states.revision(GLOBAL_KEY)

    async def approved() -> bool:
        reply = await h.check("RECREATED1", "BTCUSDT", "BUY", 0.1, 50_000.0, dry_run=True)
        return bool(reply["approved"])

    await wait_for(approved, 5.0, message="never approved before the outage")

    server.kill()
    shutil.rmtree(server.data_dir / "jetstream")
    await asyncio.to_thread(server.start)
    revision = await _operator_trip_when_reachable(server.url, bucket)
    assert revision < held  # the reproduction: the new trip's revision is one the copy holds

    replies: list[tuple[dict[str, object], str]] = []
    errors: list[str] = []

    async def enforced() -> bool:
        try:
            reply = await h.check("RECREATED1", "BTCUSDT", "BUY", 0.1, 50_000.0, dry_run=True)
        except (nats.errors.Error, TimeoutError) as exc:
            errors.append(type(exc).__name__)  # the test's own client is still reconnecting
            return False
        replies.append((reply, str(h.worker.readiness()["trading_state"])))
        return reply["rejection_reason"] == "emergency_stop_active"

    try:
        await wait_for(enforced, 15.0, 0.02)
    except AssertionError:
        raise AssertionError(
            "the new HALT was never enforced: last replies "
            f"{[(r['approved'], r['rejection_reason'], ready) for r, ready in replies[-3:]]}, "
            f"errors {errors[-3:]}"
        ) from None
    reasons = {str(r["rejection_reason"]) for r, _ in replies}
    assert not any(r["approved"] for r, _ in replies), replies
    assert reasons <= {"trading_state_unknown", "emergency_stop_active"}, reasons
    # confirmed again (honestly) once the copy is the recreated bucket's
    assert replies[-1][1] == "confirmed"
    assert h.worker.watcher is not None and h.worker.watcher.resets >= 1
    assert states.revision(GLOBAL_KEY) == revision


class _SlowStatus:
    """The bucket, with each ``status`` reply held back ``delay`` s (a busy event loop, a
    loaded server); everything else passes through."""

    def __init__(self, kv: object, delay: float) -> None:
        self._kv, self._delay = kv, delay

    async def status(self) -> object:
        await asyncio.sleep(self._delay)
        return await self._kv.status()  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._kv, name)


async def test_confirmation_when_replies_slower_than_the_interval_then_still_confirmed(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(state_confirm_interval=0.2, state_max_age=2.0)
    await h.pnl("SLOW1", 100_000.0)
    await h.settle()
    watcher = h.worker.watcher
    assert watcher is not None
    watcher._kv = _SlowStatus(watcher._kv, 0.5)  # type: ignore[assignment]
    loop = asyncio.get_running_loop()
    slowed_at = time.monotonic()

    def confirmed_since() -> bool:
        at = watcher.confirmed_at
        return at is not None and at > slowed_at

    # Each confirmation counts from when its request left; a reply 0.5 s late still confirms
    # (the request waits up to half of RISK_STATE_MAX_AGE), so checks keep being decided.
    await wait_for(confirmed_since, 5.0, 0.05, "no confirmation with replies 0.5 s late")
    started = loop.time()
    while loop.time() - started < 2.5:  # longer than RISK_STATE_MAX_AGE
        reply = await h.check("SLOW1", "BTCUSDT", "BUY", 0.1, 50_000.0, dry_run=True)
        assert reply["rejection_reason"] != "trading_state_unknown", reply
        await asyncio.sleep(0.1)
