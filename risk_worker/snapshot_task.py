"""Redis snapshots for one worker: restore at start, submit every monitor pass.

What events cannot rebuild (peak and day-start equity) and what lets a restarted worker answer
at once (balances, positions, marks) is restored from Redis at start and written after every
monitor pass by a non-blocking store; a Redis outage never blocks a check.
"""

from __future__ import annotations

import contextlib
import logging

from risk_worker.adapters.check_handler import now_ms
from risk_worker.adapters.redis_store import RedisSnapshotStore, SnapshotStoreError, connect_redis
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.persistence import (
    AccountState,
    MarkState,
    export_account,
    export_marks,
    restore_account,
    restore_marks,
)
from risk_worker.wire_out import RiskMetricsMsg

log = logging.getLogger(__name__)


class SnapshotKeeper:
    """Keeps an engine's durable state in Redis.

    Args:
        engine: the decision core whose book is restored and exported.
        redis_url: the Redis server (``RISK_REDIS_URL``).
        interval: the monitor interval, seconds (snapshot TTL is three of them).
        max_age: seconds after which a restored account is unknown until a fresh event.
    """

    def __init__(self, engine: RiskEngine, redis_url: str, interval: float, max_age: float):
        self._engine = engine
        self._max_age_ms = int(max_age * 1000)
        self.store = RedisSnapshotStore(connect_redis(redis_url), interval)

    async def start(self) -> None:
        """Restore what Redis holds (if it answers; otherwise later), then keep writing."""
        try:
            accounts, marks = await self.store.load()
        except SnapshotStoreError as exc:
            log.warning(
                "Redis unreadable at start (%s): starting without snapshots; they are "
                "restored when it answers",
                exc,
            )
        else:
            self._restore(accounts, marks)
        self.store.start(self._restore)

    def submit(self, published: dict[str, RiskMetricsMsg], now: int) -> None:
        """Hand this pass's book, marks and metrics to the writer (never blocks)."""
        book = self._engine.book
        self.store.submit(
            [export_account(a, now) for a in book.accounts.values()], export_marks(book), published
        )

    @property
    def status(self) -> str:
        """``connected`` or ``disconnected`` (as of the last write attempt)."""
        return "connected" if self.store.connected else "disconnected"

    async def stop(self) -> None:
        """Write what is pending (bounded), then close the client."""
        await self.store.stop()
        with contextlib.suppress(Exception):
            await self.store.client.aclose()

    def _restore(self, accounts: list[AccountState], marks: list[MarkState]) -> None:
        now = now_ms()
        book = self._engine.book
        known = sum(restore_account(book, a, now, self._max_age_ms) for a in accounts)
        restore_marks(book, marks)
        log.info(
            "restored %d accounts (%d current, the rest unknown until a fresh event) and "
            "%d marks from Redis",
            len(accounts),
            known,
            len(marks),
        )
