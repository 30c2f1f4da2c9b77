"""Sampling of the marks for historical VaR, just after every interval boundary.

The tick path samples a symbol's previous mark when a tick replaces it
(:meth:`~risk_worker.domain.engine.RiskEngine.set_mark`); this task samples, at each multiple
of ``RISK_VAR_SAMPLE_INTERVAL`` (worker clock, ms since epoch), the symbols that had no tick
since, and rebuilds the aligned return vectors there so that checks find them ready
(:meth:`~risk_worker.domain.returns.ReturnHistory.refresh`). Rule source: issue 13.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from risk_worker.adapters.nats_service import now_ms
from risk_worker.domain.engine import RiskEngine

log = logging.getLogger("risk_worker.var")


class VarSampler:
    """Calls :meth:`RiskEngine.sample_marks` just after every sample boundary.

    Args:
        engine: the worker's engine (its book holds the return history).
        on_sampled: called with the boundary (ms) after each pass, e.g. to persist the samples;
            None: nothing.
        clock: the worker clock (ms since epoch); the adapters' by default.
    """

    def __init__(
        self,
        engine: RiskEngine,
        on_sampled: Callable[[int], None] | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._engine = engine
        self._on_sampled = on_sampled
        self._clock = clock

    def sample(self) -> int:
        """Sample now (the boundaries up to the present); returns how many samples."""
        now = self._clock()
        recorded = self._engine.sample_marks(now)
        if self._on_sampled is not None:
            self._on_sampled(now)
        return recorded

    async def run(self) -> None:
        """Sleep to the next boundary, sample, repeat; a failed pass is logged, not fatal."""
        step = self._engine.book.returns.interval_ms
        while True:
            now = self._clock()
            await asyncio.sleep(((now // step + 1) * step - now) / 1000.0)
            try:
                self.sample()
            except Exception:
                log.exception("VaR sampling failed")
