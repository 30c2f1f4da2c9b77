"""A new trading-state watcher is confirmed only once its copy holds the bucket's values, not
when nats-py says they are in.

nats-py puts its "current values delivered" marker when a consumer-info reply says nothing is
pending, and that reply can overtake the deliveries it counted (CI once saw
``KeyValue.keys()`` come back short). The fault is injected here: the marker comes first and
the values ``DELAY`` seconds later, over a real nats-server and bucket.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from risk_worker.adapters import operator
from risk_worker.adapters.kv_bucket import open_bucket
from risk_worker.adapters.state_watcher import StateWatcher
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.trading_state import GLOBAL_KEY, TradingStates
from risk_worker.domain.types import TradingState
from tests.helpers import connect, wait_for
from tests.procs import unique

pytestmark = pytest.mark.timeout(30)

DELAY = 0.3


class _LateValues:
    """A real watcher whose first update is the end-of-values marker (None); its own updates
    follow, the first of them ``delay`` s late."""

    def __init__(self, real: Any, delay: float) -> None:
        self._real, self._delay, self._first = real, delay, True
        self._sub = real._sub

    def __aiter__(self) -> _LateValues:
        return self

    async def __anext__(self) -> Any:
        if self._first:
            self._first = False
            return None
        if self._delay:
            await asyncio.sleep(self._delay)
            self._delay = 0.0
        return await self._real.__anext__()

    async def stop(self) -> None:
        await self._real.stop()


class _MarkerFirst:
    """The bucket, whose watchers come from :class:`_LateValues`."""

    def __init__(self, kv: Any, delay: float) -> None:
        self._kv, self._delay = kv, delay

    async def watchall(self, **kw: Any) -> _LateValues:
        return _LateValues(await self._kv.watchall(**kw), self._delay)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)


async def test_watcher_when_marker_overtakes_the_values_then_not_confirmed_without_the_halt(
    nats_server: NatsServer,
) -> None:
    nc = await connect(nats_server.url)
    watcher: StateWatcher | None = None
    try:
        bucket = unique("initial")
        kv = await open_bucket(nc.jetstream(), bucket)
        await operator.trip(nc, bucket, TradingState.HALTED, "desk halt", "ops", None)
        states = TradingStates()
        watcher = StateWatcher(_MarkerFirst(kv, DELAY), states, 2.0, 0.5)  # type: ignore[arg-type]
        open_while_halted: list[float] = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        await watcher.start()

        def halted_and_confirmed() -> bool:
            held = states.value(GLOBAL_KEY)
            if watcher is not None and watcher.confirmed() and held is None:
                open_while_halted.append(loop.time() - started)
            return watcher is not None and watcher.confirmed() and held is not None

        await wait_for(halted_and_confirmed, 5.0, 0.002, "never confirmed with the HALT")
        assert not open_while_halted, (
            f"confirmed without the HALT from {open_while_halted[0]:.3f} s to "
            f"{open_while_halted[-1]:.3f} s: checks would have been approved"
        )
        held = states.value(GLOBAL_KEY)
        assert held is not None and held.state is TradingState.HALTED
    finally:
        if watcher is not None:
            await watcher.stop()
        await nc.close()
