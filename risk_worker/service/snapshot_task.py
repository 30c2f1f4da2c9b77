"""Redis snapshots for one worker: restore at start, submit every monitor pass.

What events cannot rebuild (peak and day-start equity) and what lets a restarted worker answer
at once (balances, positions, marks) is restored from Redis at start and written after every
monitor pass by a non-blocking store; a Redis outage never blocks a check.

Each stored account carries the last ``RISK_INPUTS`` sequence its state includes: the restore
at start returns the replay plan (:class:`~risk_worker.domain.persistence.RestoreReport`), and
nothing is written while the replay runs (a restored account may be ahead of the book's
sequence until it has caught up).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from risk_worker.adapters.check_handler import now_ms
from risk_worker.adapters.redis_store import (
    AccountsToWrite,
    RedisSnapshotStore,
    SnapshotStoreError,
    connect_redis,
)
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.persistence import (
    AccountState,
    MarkState,
    RestoreReport,
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
        on_refused: called with (``"account"``, ``"mark"`` or ``"inputs_seq"``, count) when
            stored entries fail validation and are not restored (metrics).
        inputs_seq: the last ``RISK_INPUTS`` sequence the book includes now (None: unknown).
    """

    def __init__(
        self,
        engine: RiskEngine,
        redis_url: str,
        interval: float,
        max_age: float,
        on_refused: Callable[[str, int], None] | None = None,
        inputs_seq: Callable[[], int | None] = lambda: None,
    ):
        self._inputs_seq = inputs_seq
        self._engine = engine
        self._on_refused = on_refused
        self._max_age_ms = int(max_age * 1000)
        self.store = RedisSnapshotStore(connect_redis(redis_url), interval)

    async def start(self, last_seq: int | None = None) -> RestoreReport | None:
        """Restore what Redis holds (if it answers; otherwise later, whole), then keep writing.

        Args:
            last_seq: the ``RISK_INPUTS`` stream's last sequence (the replay follows).

        Returns:
            what was restored and the replay plan; None when Redis was unreadable.
        """
        report = None
        try:
            accounts, marks = await self.store.load()
        except SnapshotStoreError as exc:
            log.warning(
                "Redis unreadable at start (%s): starting without snapshots; they are "
                "restored when it answers",
                exc,
            )
        else:
            report = self._restore(accounts, marks, last_seq)
        self.store.start(self._late_restore)
        return report

    def submit(self, published: dict[str, RiskMetricsMsg], now: int) -> None:
        """Hand this pass's accounts, marks and metrics to the writer (never blocks); nothing
        while the book is being replayed. The accounts are exported when the writer reaches
        them, a chunk at a time (:meth:`_export`), so the pass does not hold the event loop
        for the whole book's export."""
        if self._engine.book_replaying:
            return
        book = self._engine.book
        accounts = AccountsToWrite(list(book.accounts), self._export)
        self.store.submit(accounts, export_marks(book), published)

    def _export(self, ids: list[str]) -> list[AccountState]:
        """The stored states of these accounts now (one chunk of a write, run synchronously):
        each includes exactly the events up to the sequence read with it."""
        book, seq, now = self._engine.book, self._inputs_seq(), now_ms()
        return [export_account(a, now, seq) for i in ids if (a := book.accounts.get(i)) is not None]

    @property
    def status(self) -> str:
        """``connected`` or ``disconnected`` (as of the last write attempt)."""
        return "connected" if self.store.connected else "disconnected"

    async def stop(self) -> None:
        """Write what is pending (bounded), then close the client."""
        await self.store.stop()
        with contextlib.suppress(Exception):
            await self.store.client.aclose()

    def _late_restore(self, accounts: list[AccountState], marks: list[MarkState]) -> None:
        """Redis answered after the start: merge what it holds into the replayed book."""
        self._restore(accounts, marks)

    def _restore(
        self, accounts: list[AccountState], marks: list[MarkState], last_seq: int | None = None
    ) -> RestoreReport:
        """Restore what validates; refuse, count and log (a bounded number of lines) the rest."""
        engine = self._engine
        r = restore(
            engine.book,
            accounts,
            marks,
            now_ms(),
            self._max_age_ms,
            engine.marks.max_symbols,
            last_seq,
        )
        kinds = (
            ("account", r.refused_accounts),
            ("mark", r.refused_marks),
            ("inputs_seq", r.refused_seqs),
        )
        for kind, refused in kinds:
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
        return r
