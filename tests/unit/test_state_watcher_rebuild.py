"""The trading-state watcher's rebuild is bounded: a watcher whose creation hangs (the bucket's
stream has no leader during an election) is abandoned after ``max_age`` seconds, not after
nats-py's 5 s JetStream API timeout, so the next confirmation can try again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from risk_worker.adapters.state_watcher import StateWatcher
from risk_worker.domain.trading_state import TradingStates


class _Watcher:
    """Delivers the end-of-initial-values marker, then nothing."""

    def __aiter__(self) -> AsyncIterator[None]:
        return self._entries()

    async def _entries(self) -> AsyncIterator[None]:
        yield None
        await asyncio.Event().wait()

    async def stop(self) -> None:
        """Nothing to stop."""


class _Bucket:
    """A bucket whose first ``watchall`` answers and every later one hangs."""

    def __init__(self) -> None:
        self.watches = 0

    async def watchall(self) -> _Watcher:
        self.watches += 1
        if self.watches > 1:
            await asyncio.Event().wait()
        return _Watcher()

    async def status(self) -> Any:
        state = SimpleNamespace(last_seq=0)
        return SimpleNamespace(stream_info=SimpleNamespace(state=state, created=None))


async def test_rebuild_when_watcher_creation_hangs_then_abandoned_after_max_age(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bucket = _Bucket()
    watcher = StateWatcher(bucket, TradingStates(), max_age=0.3, confirm_interval=10.0)  # type: ignore[arg-type]
    await watcher.start()
    try:
        await asyncio.sleep(0.01)
        assert watcher.confirmed()
        watcher.on_disconnect()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with caplog.at_level(logging.WARNING, "risk_worker.adapters.state_watcher"):
            await asyncio.wait_for(watcher.on_reconnect(), 2.0)
        assert 0.25 <= loop.time() - started < 1.0
        assert "rebuilding the trading-state watcher failed: TimeoutError()" in caplog.text
        assert not watcher.confirmed() and bucket.watches == 2
    finally:
        await watcher.stop()
