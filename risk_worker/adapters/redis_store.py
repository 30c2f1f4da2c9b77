"""Redis snapshot store: the book and drawdown state kept across restarts, metrics for readers.

Keys (prefix ``risk:``; money in quote currency, times in ms since the epoch):

* ``book:{account_id}`` — STRING, :class:`AccountState` as JSON; ``book:index`` — SET of ids.
  No TTL: ``restore_account`` decides at start whether a stored account is still fresh.
* ``state:{account_id}`` — HASH ``peak_equity``, ``day_start_equity``, ``trading_day``
  (null as ``""``), written when one of them changed; it wins over the book's copies at load.
* ``marks`` — HASH symbol → :class:`MarkState` JSON.
* ``snapshot:{account_id}`` — HASH of the account's last published ``RiskMetrics`` (see
  :func:`flatten_metrics`; rewritten when a new one was published) and ``snapshot:index`` —
  SET of ids, both expiring after 3 monitor intervals (refreshed at every write).

:meth:`RedisSnapshotStore.submit` never blocks: it swaps in the latest submission, which a
background task writes in pipelines of :data:`WRITE_CHUNK` accounts (exporting each chunk's
accounts as it packs them, :class:`AccountsToWrite`), yielding to the event loop between them,
retrying while Redis is unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable

import msgspec
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from risk_worker.adapters.ratelog import RateLimitedLog
from risk_worker.domain.persistence import AccountState, MarkState
from risk_worker.errors import RiskWorkerError
from risk_worker.wire.outbound import RiskMetricsMsg

log = logging.getLogger("risk_worker.redis")


class AccountsToWrite:
    """The accounts a submission writes, exported one chunk at a time, when the chunk is
    written: a pass never holds the event loop for the whole book's export (8–13 ms at 1,000
    accounts × 20 positions), only for a chunk's.

    Args:
        ids: the accounts, by id, in write order.
        export: their stored states, each with the input sequence it includes at that moment
            (called with up to :data:`WRITE_CHUNK` ids; an id no longer in the book is left out).
    """

    def __init__(self, ids: list[str], export: Callable[[list[str]], list[AccountState]]) -> None:
        self._ids, self._export = ids, export

    @classmethod
    def of(cls, accounts: list[AccountState]) -> AccountsToWrite:
        """Accounts already exported."""
        by_id = {a.account_id: a for a in accounts}
        return cls(list(by_id), lambda ids: [by_id[i] for i in ids])

    def __len__(self) -> int:
        return len(self._ids)

    def chunk(self, start: int, end: int) -> list[AccountState]:
        """The stored states of the accounts ``start:end``, exported now."""
        return self._export(self._ids[start:end]) if start < len(self._ids) else []


Submission = tuple[AccountsToWrite, list[MarkState], dict[str, RiskMetricsMsg]]
RestoreCallback = Callable[[list[AccountState], list[MarkState]], None]
_encode = msgspec.json.Encoder().encode
_account_decoder = msgspec.json.Decoder(AccountState)
_mark_decoder = msgspec.json.Decoder(MarkState)
_STATE = ("peak_equity", "day_start_equity", "trading_day")
WRITE_CHUNK = 20
"""Accounts per pipeline of a snapshot write (about 40 to 60 commands): the event loop is held
for one chunk's packing and parsing at a time, not the whole book's (measured in
docs/performance.md: 50 gave a sequential p99 of 2.9–3.9 ms, 20 gave 2.0–2.5 ms)."""


class SnapshotStoreError(RiskWorkerError):
    """Redis could not be read (unreachable, timed out, or answered an error)."""


def connect_redis(url: str, *, timeout: float = 1.0, health_check_interval: float = 10.0) -> Redis:
    """A client for ``url`` (``redis://host:port/db``; may hold a password: never log it).

    Args:
        timeout: connect and per-command socket timeout, seconds.
        health_check_interval: seconds of idleness after which a connection is PINGed first.

    It decodes replies to str (the store requires that) and does not retry by itself. Connecting
    is lazy: this does no I/O. Close it with ``await client.aclose()``.
    """
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
        health_check_interval=health_check_interval,
        retry=Retry(NoBackoff(), 0),
    )


def flatten_metrics(msg: RiskMetricsMsg) -> dict[str, str]:
    """The message as HASH fields: numbers as decimal strings, booleans ``true``/``false``,
    dicts (``position_concentration``, ``limit_utilization``) as JSON, null as ``""``."""
    out: dict[str, str] = {}
    for name, value in msgspec.to_builtins(msg).items():
        if value is None or isinstance(value, bool):
            out[name] = {None: "", True: "true", False: "false"}[value]
        else:
            out[name] = _encode(value).decode() if isinstance(value, dict) else str(value)
    return out


def state_fields(a: AccountState) -> dict[str, str]:
    """The ``state:{account_id}`` HASH of an account (null as ``""``)."""
    values = zip(_STATE, (a.peak_equity, a.day_start_equity, a.trading_day), strict=True)
    return {k: "" if v is None else str(v) for k, v in values}


class RedisSnapshotStore:
    """Loads the stored book at start and writes the monitor's latest submission in the background.

    Args:
        client: a ``redis.asyncio.Redis`` with ``decode_responses=True`` (see
            :func:`connect_redis`); the caller closes it.
        interval: monitor interval, seconds: snapshot TTL is ``ceil(3 × interval)`` s (≥ 1);
            retries back off from 50 ms to at most the interval, jittered.
        key_prefix: prepended to every key.

    Attributes:
        writes / failures: successful / failed pipeline writes.
        dropped: submissions replaced by a newer one before they were written.
        last_write_ms: wall-clock time of the last successful write (ms), 0 before any.
        connected: whether the last read or write reached Redis.
        loaded: whether :meth:`load` has succeeded. Nothing is written before, so a worker that
            started without Redis never overwrites a stored peak with a lower one.

    """

    def __init__(self, client: Redis, interval: float, *, key_prefix: str = "risk:") -> None:
        self._client, self._interval, self._p = client, interval, key_prefix
        self._ttl = max(1, math.ceil(3 * interval))
        self._pending: Submission | None = None
        self._wake = asyncio.Event()
        self._states_written: dict[str, dict[str, str]] = {}
        self._snapshots_written: dict[str, RiskMetricsMsg] = {}  # account id → the one written
        self._task: asyncio.Task[None] | None = None
        self._ratelog = RateLimitedLog(log, interval=30.0)
        self.writes = self.failures = self.dropped = self.last_write_ms = 0
        self.connected = self.loaded = False

    @property
    def client(self) -> Redis:
        """The Redis client (closed by the owner after :meth:`stop`)."""
        return self._client

    async def load(self) -> tuple[list[AccountState], list[MarkState]]:
        """The stored accounts (state hashes applied) and marks; undecodable entries are
        skipped with a warning.

        Raises:
            SnapshotStoreError: Redis could not be read.
        """
        p = self._p
        try:
            ids = sorted(map(str, await self._client.smembers(f"{p}book:index")))
            pipe = self._client.pipeline(transaction=False)
            for i in ids:
                pipe.get(f"{p}book:{i}")
                pipe.hgetall(f"{p}state:{i}")
            pipe.hgetall(f"{p}marks")
            *stored, stored_marks = await pipe.execute()
        except (RedisError, OSError) as exc:
            self.connected = False
            raise SnapshotStoreError(f"cannot read the snapshot store: {exc!r}") from exc
        self.connected = self.loaded = True
        pairs = zip(ids, stored[0::2], stored[1::2], strict=True)
        accounts = [_account(i, book, st) for i, book, st in pairs]
        marks = []
        for symbol, raw in stored_marks.items():
            try:
                marks.append(_mark_decoder.decode(raw))
            except (msgspec.DecodeError, RecursionError) as exc:  # not JSON, wrong, too deep
                log.warning("skipping undecodable stored mark %s: %s", symbol, exc)
        return accounts, marks

    def submit(
        self,
        accounts: list[AccountState] | AccountsToWrite,
        marks: list[MarkState],
        metrics: dict[str, RiskMetricsMsg],
    ) -> None:
        """Hands the monitor's latest state to the writer: the accounts (exported, or to export
        chunk by chunk as they are written), the marks, and ``metrics``: each account's last
        published ``risk.metrics`` (by account id). A snapshot hash is rewritten only when that
        object is not the one last written (the TTL is refreshed every write).

        Never blocks; an earlier submission not yet written is replaced (counted in ``dropped``).
        """
        if isinstance(accounts, list):
            accounts = AccountsToWrite.of(accounts)
        self._replace((accounts, marks, metrics))
        self._wake.set()

    def start(self, restore: RestoreCallback) -> None:
        """Starts the background writer.

        Args:
            restore: called with what a late :meth:`load` returns, when the load at start failed
                and Redis came back: merge it into the book (``restore_account`` keeps the
                higher peak). Submissions made before it are dropped.
        """
        if self._task is None:
            self._task = asyncio.create_task(self._run(restore), name="redis-snapshot-writer")

    async def stop(self, flush_timeout: float = 2.0) -> None:
        """Stops the writer, then tries once (within ``flush_timeout`` s) to write what is left."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        sub = self._take()
        if sub is not None and self.loaded:
            try:
                await asyncio.wait_for(self._write(sub), flush_timeout)
            except TimeoutError:
                log.warning("last snapshot write timed out after %.1f s", flush_timeout)

    async def read_snapshots(self) -> dict[str, dict[str, str]]:
        """Account id → its ``snapshot`` HASH (see :func:`flatten_metrics`), for every id in
        ``snapshot:index`` whose hash has not expired.

        Raises:
            SnapshotStoreError: Redis could not be read.
        """
        try:
            ids = sorted(map(str, await self._client.smembers(f"{self._p}snapshot:index")))
            pipe = self._client.pipeline(transaction=False)
            for i in ids:
                pipe.hgetall(f"{self._p}snapshot:{i}")
            hashes = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise SnapshotStoreError(f"cannot read the snapshot store: {exc!r}") from exc
        return {i: h for i, h in zip(ids, hashes, strict=True) if h}

    def _take(self) -> Submission | None:
        sub, self._pending = self._pending, None
        return sub

    def _replace(self, sub: Submission | None) -> None:
        self.dropped += self._pending is not None
        self._pending = sub

    async def _run(self, restore: RestoreCallback) -> None:
        """Writes the latest submission whenever there is one; backs off after failures."""
        in_row = 0
        while True:
            if self.loaded:
                await self._wake.wait()
                self._wake.clear()
                sub = self._take()
                if sub is None or await self._write(sub):
                    in_row = 0
                    continue
                if self._pending is None:
                    self._pending = sub  # retried next round unless a newer one arrives
                else:
                    self.dropped += 1  # a newer one arrived while this write failed
                self._wake.set()
            elif await self._late_load(restore):
                continue
            in_row += 1
            backoff = min(self._interval, 0.05 * 2 ** min(in_row, 16))
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))

    async def _late_load(self, restore: RestoreCallback) -> bool:
        try:
            accounts, marks = await self.load()
        except SnapshotStoreError as exc:
            self._ratelog.warning("load", "snapshot store still unreadable: %s", exc)
            return False
        log.info("snapshot store readable: restoring %d accounts late", len(accounts))
        restore(accounts, marks)
        self._replace(None)  # exported before the restore: it would lower the stored peaks
        return True

    async def _write(self, sub: Submission) -> bool:
        """Writes one submission in non-transactional pipelines of :data:`WRITE_CHUNK` accounts
        each (one pipeline of 1,000 accounts held the event loop for up to 0.27 s while
        redis-py packed and parsed it, and every check waited); False on a Redis error, the
        rest of the submission then unwritten (it is retried whole, or replaced)."""
        accounts, marks, metrics = sub
        metric_items = list(metrics.items())
        for start in range(0, max(len(accounts), len(metric_items), 1), WRITE_CHUNK):
            end = start + WRITE_CHUNK
            last = end >= max(len(accounts), len(metric_items))
            if not await self._write_chunk(
                accounts.chunk(start, end), metric_items[start:end], marks if last else []
            ):
                return False
        if len(self._snapshots_written) > len(metrics):  # accounts gone from the book
            kept = self._snapshots_written.items()
            self._snapshots_written = {a: m for a, m in kept if a in metrics}
        if not self.connected and self.failures:
            log.info("redis snapshot writes resumed (%d failures so far)", self.failures)
        self.writes += 1
        self.connected = True
        self.last_write_ms = time.time_ns() // 1_000_000
        return True

    async def _write_chunk(
        self,
        accounts: list[AccountState],
        metrics: list[tuple[str, RiskMetricsMsg]],
        marks: list[MarkState],
    ) -> bool:
        """One pipeline: these accounts' books and changed states, these metrics snapshots
        (TTL refreshed) and, with the last chunk, the marks; False on a Redis error."""
        p, ttl = self._p, self._ttl
        pipe = self._client.pipeline(transaction=False)
        changed = {}
        for a in accounts:
            pipe.set(f"{p}book:{a.account_id}", _encode(a))
            fields = state_fields(a)
            if self._states_written.get(a.account_id) != fields:
                pipe.hset(f"{p}state:{a.account_id}", items=_flat(fields))
                changed[a.account_id] = fields
        if accounts:
            pipe.sadd(f"{p}book:index", *(a.account_id for a in accounts))
        written = self._snapshots_written
        fresh = {}
        for account_id, m in metrics:
            if written.get(account_id) is not m:  # the monitor hands the same object unchanged
                pipe.hset(f"{p}snapshot:{account_id}", items=_flat(flatten_metrics(m)))
                fresh[account_id] = m
            pipe.expire(f"{p}snapshot:{account_id}", ttl)
        if metrics:
            pipe.sadd(f"{p}snapshot:index", *(account_id for account_id, _ in metrics))
            pipe.expire(f"{p}snapshot:index", ttl)
        if marks:
            pipe.hset(f"{p}marks", items=_flat({m.symbol: _encode(m).decode() for m in marks}))
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            self.failures += 1
            self.connected = False
            self._states_written.clear()  # Redis may come back empty: rewrite every state
            self._snapshots_written.clear()  # and every snapshot
            self._ratelog.warning("write", "redis snapshot write failed: %r", exc)
            return False
        self._states_written.update(changed)
        written.update(fresh)
        await asyncio.sleep(0)  # checks waiting behind this chunk go first
        return True


def _flat(fields: dict[str, str]) -> list[str]:
    """``{k: v}`` as ``[k, v, ...]``, the form HSET's ``items`` takes."""
    return [x for kv in fields.items() for x in kv]


def _account(account_id: str, book: str | None, state: dict[str, str]) -> AccountState:
    """The stored account with its state hash applied (the book's own copies when the hash
    does not parse). An indexed account whose book is missing or does not decode is not
    skipped: it comes back with its state hash's peak and day start only and no input sequence,
    so the restore replays ``RISK_INPUTS`` from the stream's start (skipping it would replay
    only from the other accounts' sequences and rebuild this one from part of its events)."""
    peaks: dict[str, float | int | None] = {}
    if state:
        try:
            peaks = {
                k: t(state[k]) if state.get(k) else None
                for k, t in zip(_STATE, (float, float, int), strict=True)
            }
        except ValueError as exc:
            log.warning(
                "stored state of account %s does not parse (%s): its book's copies are used",
                account_id,
                exc,
            )
    problem = "indexed, but no book stored"
    if book is not None:
        try:
            acct = _account_decoder.decode(book)
        except (msgspec.DecodeError, RecursionError) as exc:
            problem = f"its book does not decode: {exc}"
        else:
            return msgspec.structs.replace(acct, **peaks) if peaks else acct
    log.warning(
        "stored account %s: %s; restoring its peak only and replaying the stream from its start",
        account_id,
        problem,
    )
    blank = AccountState(account_id, 0.0, 0.0, 0, False, [], None, None, None, 0)
    return msgspec.structs.replace(blank, **peaks) if peaks else blank
