"""Keeps the worker's copy of the trading states current and says whether it is confirmed.

Three mechanisms, because a KV watcher alone can go blind for seconds after a server restart
(nats.py issue #510, measured here at about 11 s):

1. a watcher on the bucket applies every change as it happens (about 3 ms end to end);
2. every ``confirm_interval`` the bucket stream's last sequence is read: when the watcher has
   delivered up to it, the copy is confirmed as of the moment that read was sent; when it still
   lags 50 ms later the copy is unconfirmed at once and the watcher rebuilt (it then re-delivers
   the current values), so a blind watcher lets checks through for one interval at most;
3. on disconnect the copy is unconfirmed at once; on reconnect the watcher is rebuilt.

A new watcher's copy is confirmed by the same read, made as soon as nats-py marks the current
values as delivered: the marker alone is not enough, because nats-py puts it when a
consumer-info reply says nothing is pending, and that reply can overtake the values it counted
(seen in CI as a short ``KeyValue.keys()``). Trusting it let checks through for the few
milliseconds before a HALT already in the bucket reached the copy.

A rebuild waits at most ``max_age`` for the new watcher (its consumer is created through the
JetStream API): one sent while the bucket's stream has no leader (a node lost, a new leader
being elected) would otherwise wait for nats-py's 5 s API timeout, and the copy would stay
unconfirmed that long after the new leader is in place. An abandoned rebuild is tried again
at the next confirmation.

A bucket recreated (its store lost), purged or restored starts its revisions again, so a new
trip can come with a revision the copy already holds and be ignored as not newer. The watcher
takes it as a reset of the bucket when an entry's revision is lower than the one it holds for
that key, or equal with a different value, or when the stream's last sequence is lower than the
highest revision it has seen, or the stream's creation time changed: the copy is unconfirmed at
once, a more restrictive value of that entry applied at once, and the copy is forgotten and
rebuilt from a full read of the bucket (then confirmed again). The bucket is the truth: a stop
that was lost with the store is not kept.

Checks are denied ``trading_state_unknown`` while the copy is not confirmed within max age.

The restricted list (``restricted.*`` keys, same bucket) is kept in the same copy
(``states.restricted``) by the same mechanisms: confirmed, reset and re-read with the states.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import nats.errors
from nats.js.kv import KeyValue

from risk_worker.adapters.kv_bucket import decode_restriction, decode_state
from risk_worker.domain.restricted import RESTRICTED_PREFIX, parse_restricted_key
from risk_worker.domain.trading_state import StateValue, TradingStates, more_severe, scope_of_key

log = logging.getLogger(__name__)

LAG_GRACE = 0.05
"""Seconds a lagging watcher gets to deliver an entry in flight before it counts as blind."""


class StateWatcher:
    """Watches the bucket into ``states``; ``confirmed()`` is what the check path reads.

    Args:
        kv: the bound bucket.
        states: the decision core's copy, updated in place.
        max_age: seconds a confirmation stays valid.
        confirm_interval: seconds between confirmations (shorter than ``max_age``); each
            request waits for its reply up to the longer of it and half of ``max_age``.
        on_change: called with (key, value or None for ACTIVE/deleted, KV revision) after each
            applied change (for logs and the audit trail).
        on_other: called with (key, value or None when deleted) for the bucket's other keys.
    """

    def __init__(
        self,
        kv: KeyValue,
        states: TradingStates,
        max_age: float,
        confirm_interval: float,
        on_change: Callable[[str, StateValue | None, int], None] | None = None,
        on_other: Callable[[str, bytes | None], None] | None = None,
    ) -> None:
        self._on_other = on_other
        self._kv = kv
        self._states = states
        self._max_age = max_age
        self._interval = confirm_interval
        # A confirmation counts from when its request left, so a reply slower than the interval
        # (a busy event loop) still confirms; waiting up to half the validity for it keeps the
        # state confirmed under load instead of discarding each slow reply and asking again.
        self._request_timeout = max(confirm_interval, max_age / 2)
        self._on_change = on_change
        self._confirmed_at: float | None = None
        self._last_seen = 0
        self._initial_done = False
        self._watcher: KeyValue.KeyWatcher | None = None
        self._pump: asyncio.Task[None] | None = None
        self._confirmer: asyncio.Task[None] | None = None
        self._rebuild_lock = asyncio.Lock()
        self._seen: dict[str, tuple[int, str, bytes]] = {}  # key → (revision, operation, value)
        self._created: object = None  # the bucket stream's creation time
        self._resetter: asyncio.Task[None] | None = None
        self._initial: asyncio.Task[None] | None = None  # the confirmation after a rebuild
        self._generation = 0  # rebuilds so far
        self.resets = 0
        """Resets of the bucket detected (recreated, purged or restored under the watcher)."""

    def confirmed(self, now: float | None = None) -> bool:
        """True when the copy was confirmed within ``max_age`` seconds (monotonic clock)."""
        at = self._confirmed_at
        if at is None:
            return False
        return (time.monotonic() if now is None else now) - at <= self._max_age

    @property
    def confirmed_at(self) -> float | None:
        """Monotonic time of the last confirmation, None when unconfirmed."""
        return self._confirmed_at

    async def start(self) -> None:
        """Start watching and confirming; returns once the watcher is subscribed."""
        await self._rebuild()
        self._confirmer = asyncio.create_task(self._confirm_loop(), name="state-confirm")

    async def stop(self) -> None:
        """Stop both tasks and the watcher."""
        for task in (self._confirmer, self._resetter, self._initial, self._pump):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._stop_watcher()

    def on_disconnect(self) -> None:
        """The connection dropped: the copy can no longer be confirmed."""
        self._confirmed_at = None

    async def on_reconnect(self) -> None:
        """The connection is back: rebuild the watcher (it may be blind after a restart)."""
        try:
            await self._rebuild()
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("rebuilding the trading-state watcher failed: %r", exc)

    async def _stop_watcher(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()  # type: ignore[no-untyped-call]  # nats-py: untyped
            self._watcher = None

    async def _rebuild(self, reset: bool = False) -> None:
        async with self._rebuild_lock:
            if self._pump is not None:
                self._pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._pump
            await self._stop_watcher()
            self._initial_done = False
            self._generation += 1
            if reset:  # forget the old bucket: the new watcher delivers every current value
                self._states.reset()
                self._seen.clear()
                self._last_seen = 0
                self._created = None
            bound = None if self._confirmer is None else self._max_age  # none at start
            self._watcher = await asyncio.wait_for(self._kv.watchall(), bound)
            self._pump = asyncio.create_task(self._pump_updates(self._watcher), name="state-watch")

    async def _pump_updates(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:
                # nats-py's "the current values are in" marker. It is not proof: it is put when
                # the consumer-info reply says nothing is pending, and that reply can overtake
                # the deliveries it counted, so values may still be on their way. The copy is
                # confirmed once it holds the stream's last sequence, read after this marker.
                self._initial_done = True
                if self._initial is None or self._initial.done():
                    self._initial = asyncio.create_task(self._confirm(), name="state-initial")
                continue
            revision = int(entry.revision or 0)
            key = entry.key
            deleted = entry.operation in ("DEL", "PURGE")
            is_state = scope_of_key(key) is not None
            value = decode_state(entry.value) if is_state and not deleted else None
            restricted = key.startswith(RESTRICTED_PREFIX)
            seen = (revision, entry.operation or "", entry.value or b"")
            held = self._seen.get(key)
            if held is not None and (seen[0] < held[0] or (seen[0] == held[0] and seen != held)):
                self._bucket_reset(f"{key} came back at revision {revision} after {held[0]}")
                if is_state and more_severe(value, self._states.value(key)):
                    assert value is not None
                    self._states.set_local(key, value)  # in force now; the re-read follows
                if restricted and not deleted:
                    self._states.restricted.set_local(key, decode_restriction(entry.value))
                self._resetter = asyncio.create_task(self._reset_rebuild(), name="state-reset")
                return
            self._seen[key] = seen
            self._last_seen = max(self._last_seen, revision)
            if restricted:
                self._restrict(key, None if deleted else entry.value, revision)
                continue
            if not is_state:  # the lease, memberships: not a state
                if self._on_other is not None:
                    self._on_other(key, None if deleted else entry.value)
                continue
            if self._states.apply(key, value, revision) and self._on_change is not None:
                self._on_change(key, value, revision)

    def _restrict(self, key: str, raw: bytes | None, revision: int) -> None:
        """Apply a restricted-list entry (``raw`` None: deleted), logging the change."""
        if parse_restricted_key(key) is None:
            log.error(
                "restricted-list key %s names no symbol (restricted.<symbol> or "
                "restricted.account.<id>.<symbol>): ignored",
                key,
            )
            return
        value = decode_restriction(raw)
        if self._states.restricted.apply(key, value, revision):
            log.warning(
                "%s is now %s",
                key,
                f"restricted by {value.by}: {value.reason}" if value else "lifted",
            )

    def _bucket_reset(self, why: str) -> None:
        """The bucket was recreated, purged or restored: the copy is not confirmed from now."""
        self._confirmed_at = None
        self._initial_done = False
        self.resets += 1
        log.error("the trading-state bucket was reset (%s): reading it again", why)

    async def _confirm_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._confirm(rebuild_when_blind=True)

    async def _confirm(self, rebuild_when_blind: bool = False) -> None:
        """Read the bucket stream's last sequence; confirm the copy (as of when the request
        left) when the watcher has delivered up to it. A reset bucket makes the copy unconfirmed
        and rebuilt. A watcher still behind after ``LAG_GRACE`` is blind: with
        ``rebuild_when_blind`` (the periodic confirmation) it is rebuilt, else left to that."""
        sent = time.monotonic()
        # What the watcher had delivered when the request left: the stream held at least
        # that much when it answered (later deliveries may overtake the reply).
        seen_before, generation = self._last_seen, self._generation
        try:
            status = await asyncio.wait_for(self._kv.status(), timeout=self._request_timeout)
        except (nats.errors.Error, TimeoutError) as exc:
            log.debug("trading-state confirmation failed: %r", exc)
            return
        last_seq = int(status.stream_info.state.last_seq or 0)
        created = status.stream_info.created
        if generation == self._generation and (
            last_seq < seen_before or (self._created is not None and created != self._created)
        ):
            self._bucket_reset(
                f"stream at sequence {last_seq} < {seen_before} seen, "
                f"created {created} (was {self._created})"
            )
            await self._reset_rebuild()
            return
        self._created = created
        if not self._caught_up(last_seq):
            # An entry may be on its way (a few ms); past the grace the watcher is blind.
            await asyncio.sleep(LAG_GRACE)
            if not self._caught_up(last_seq):
                if not rebuild_when_blind:
                    return
                self._confirmed_at = None
                log.warning(
                    "trading-state watcher lags the bucket (seen %d < %d): rebuilding",
                    self._last_seen,
                    last_seq,
                )
                await self.on_reconnect()
                return
        self._confirmed_at = sent

    async def _reset_rebuild(self) -> None:
        try:
            await self._rebuild(reset=True)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("rebuilding the trading-state watcher failed: %r", exc)

    def _caught_up(self, last_seq: int) -> bool:
        return self._initial_done and self._last_seen >= last_seq
