"""Sampling of the marks for historical VaR, just after every interval boundary, and the
samples' persistence in Redis.

The tick path samples a symbol's previous mark when a tick replaces it
(:meth:`~risk_worker.domain.engine.RiskEngine.set_mark`); this task samples, at each multiple
of ``RISK_VAR_SAMPLE_INTERVAL`` (worker clock, ms since epoch), the symbols that had no tick
since, and rebuilds the aligned return vectors there so that checks find them ready
(:meth:`~risk_worker.domain.returns.ReturnHistory.refresh`). With Redis (``RISK_REDIS_URL``)
it restores the stored samples at start, writes them after every pass, and merges them again
when ``risk.control.var.reload`` arrives (``risk-worker var seed``). Rule source: issue 13.

Nothing here is on the check path: Redis is awaited by this task and the reload callback only.
A Redis failure is logged and leaves the history as it is (fewer samples: VaR policies then
deny risk-increasing orders ``insufficient_history``, never approve more).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from risk_worker.adapters.nats_service import now_ms
from risk_worker.adapters.ratelog import RateLimitedLog
from risk_worker.adapters.var_store import (
    VAR_RELOAD_SUBJECT,
    history_samples,
    load_samples,
    merge_samples,
    save_samples,
)
from risk_worker.domain.engine import RiskEngine

log = logging.getLogger("risk_worker.var")
REDIS_TIMEOUT_S = 5.0


class VarSampler:
    """Calls :meth:`RiskEngine.sample_marks` just after every sample boundary.

    Args:
        engine: the worker's engine (its book holds the return history).
        redis: where the samples are kept (:mod:`risk_worker.adapters.var_store`); None: not kept.
        clock: the worker clock (ms since epoch); the adapters' by default.
    """

    def __init__(
        self,
        engine: RiskEngine,
        redis: Redis | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._engine = engine
        self._redis = redis
        self._clock = clock
        self._failures = RateLimitedLog(log, 60.0)

    def sample(self) -> int:
        """Sample now (the boundaries up to the present); returns how many samples."""
        return self._engine.sample_marks(self._clock())

    async def rebuild(self) -> int:
        """Rebuild the stale aligned return vectors one symbol set at a time, yielding to the
        event loop in between (a check that needs one first builds it itself); returns how
        many."""
        returns = self._engine.book.returns
        stale = returns.stale_sets()
        for symbols in stale:
            returns.aligned(symbols)
            await asyncio.sleep(0)
        return len(stale)

    async def restore(self) -> int:
        """Merge the stored samples into the history; returns how many (0 without Redis or
        when Redis fails: logged)."""
        if self._redis is None:
            return 0
        try:
            stored = await asyncio.wait_for(load_samples(self._redis), REDIS_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("VaR samples not restored from Redis: %s", exc)
            return 0
        recorded = merge_samples(self._engine.book.returns, stored)
        log.info("VaR samples restored from Redis: %d samples of %d symbols", recorded, len(stored))
        return recorded

    async def save(self) -> bool:
        """Write the history's samples to Redis; False (logged, rate-limited) when it fails."""
        if self._redis is None:
            return False
        try:
            samples = history_samples(self._engine.book.returns)
            await asyncio.wait_for(save_samples(self._redis, samples), REDIS_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failures.warning("var-save", "VaR samples not written to Redis: %s", exc)
            return False
        return True

    async def listen(self, nc: Client) -> None:
        """Merge the stored samples again on every ``risk.control.var.reload``."""

        async def reload(_msg: Msg) -> None:
            await self.restore()

        await nc.subscribe(VAR_RELOAD_SUBJECT, cb=reload)

    async def run(self) -> None:
        """Sleep to the next boundary, sample, save; a failed pass is logged, not fatal."""
        step = self._engine.book.returns.interval_ms
        while True:
            now = self._clock()
            await asyncio.sleep(((now // step + 1) * step - now) / 1000.0)
            try:
                self.sample()
                await self.rebuild()
                await self.save()
            except Exception:
                log.exception("VaR sampling failed")

    async def close(self) -> None:
        """Close the Redis client."""
        if self._redis is not None:
            await self._redis.aclose()
