"""Redis snapshots for one worker: restore at start, submit every monitor pass.

What events cannot rebuild (peak and day-start equity) and what lets a restarted worker answer
at once (balances, positions, marks) is restored from Redis at start and written after every
monitor pass by a non-blocking store; a Redis outage never blocks a check.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from risk_worker.adapters.check_handler import now_ms
from risk_worker.adapters.redis_store import RedisSnapshotStore, SnapshotStoreError, connect_redis
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.persistence import (
    AccountState,
    MarkState,
    export_account,
    export_marks,
    restore,
)
from risk_worker.wire.outbound import RiskMetricsMsg

log = logging.getLogger(__name__)

MAX_REFUSAL_LINES = 10
"""Refused stored entries logged one by one at a restore; the rest are summed up in one line."""


class SnapshotKeeper:
    """Keeps an engine's durable state in Redis.

    Args:
        engine: the decision core whose book is restored and exported.
        redis_url: the Redis server (``RISK_REDIS_URL``).
        interval: the monitor interval, seconds (snapshot TTL is three of them).
        max_age: seconds after which a restored account is unknown until a fresh event.
        on_refused: called with (``"account"`` or ``"mark"``, count) when stored entries fail
            validation and are not restored (metrics).
    """

    def __init__(
        self,
        engine: RiskEngine,
        redis_url: str,
        interval: float,
        max_age: float,
        on_refused: Callable[[str, int], None] | None = None,
    ):
        self._engine = engine
        self._on_refused = on_refused
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
        """Restore what validates; refuse, count and log (a bounded number of lines) the rest."""
        engine = self._engine
        r = restore(
            engine.book, accounts, marks, now_ms(), self._max_age_ms, engine.marks.max_symbols
        )
        for kind, refused in (("account", r.refused_accounts), ("mark", r.refused_marks)):
            if not refused:
                continue
            if self._on_refused is not None:
                self._on_refused(kind, len(refused))
            for line in refused[:MAX_REFUSAL_LINES]:
                log.warning("refused a stored %s (not restored): %s", kind, line)
            if len(refused) > MAX_REFUSAL_LINES:
                log.warning(
                    "... and %d more stored %ss refused", len(refused) - MAX_REFUSAL_LINES, kind
                )
        log.info(
            "restored %d accounts (%d current, the rest unknown until a fresh event) and "
            "%d marks from Redis",
            r.accounts,
            r.known,
            r.marks,
        )
