"""Which instance owns an account's checks: live members and rendezvous hashing.

Two instances deciding on the same account at the same moment can both spend its headroom: a
burst reaches both before either hears of the other's reservations. So each account has one
owner among the live instances — the member with the highest rendezvous hash of
(member, account), the same answer in every process — and a check that reaches another
instance is forwarded to it. A lone instance owns everything (no forwarding at all).

Members heartbeat a ``member.<worker_id>`` key in the ``risk_control`` bucket every monitor
interval; a member whose key has expired (``ttl``) is no longer live. Everyone learns of the
keys through the bucket watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time

import msgspec
import nats.errors
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

MEMBER_PREFIX = "member."
OWNER_SUBJECT_PREFIX = "risk.check.owner."


class MemberValue(msgspec.Struct, frozen=True):
    """A member's heartbeat: its id and until when it counts as live (ms since epoch)."""

    worker_id: str
    expires_ms: int


def _rank(member: str, account_id: str) -> bytes:
    return hashlib.blake2b(f"{member}/{account_id}".encode(), digest_size=8).digest()


class Members:
    """Live members and account ownership.

    Args:
        kv: the bucket (heartbeats are written there).
        worker_id: this instance.
        interval: seconds between heartbeats.
        ttl: seconds a heartbeat keeps a member live.
    """

    def __init__(self, kv: KeyValue, worker_id: str, interval: float, ttl: float) -> None:
        self._kv = kv
        self.worker_id = worker_id
        self._interval = interval
        self._ttl_ms = int(ttl * 1000)
        self._expiry: dict[str, int] = {}
        self._owners: dict[str, str] = {}
        self._live: tuple[str, ...] = (worker_id,)
        self._task: asyncio.Task[None] | None = None
        self._decoder = msgspec.json.Decoder(MemberValue)
        self._encoder = msgspec.json.Encoder()

    def owner_of(self, account_id: str) -> str:
        """The instance that decides ``account_id`` (this one when it is alone)."""
        owner = self._owners.get(account_id)
        if owner is None:
            owner = max(self._live, key=lambda m: _rank(m, account_id))
            self._owners[account_id] = owner
        return owner

    def on_key(self, key: str, raw: bytes | None) -> None:
        """A bucket entry seen by the watcher; member keys update the membership."""
        if not key.startswith(MEMBER_PREFIX):
            return
        member = key[len(MEMBER_PREFIX) :]
        try:
            value = self._decoder.decode(raw) if raw else None
        except msgspec.MsgspecError:
            value = None
        if value is None:
            self._expiry.pop(member, None)
        else:
            self._expiry[member] = value.expires_ms
        self._refresh()

    def _refresh(self) -> None:
        now = time.time_ns() // 1_000_000
        live = tuple(sorted({m for m, exp in self._expiry.items() if exp > now} | {self.worker_id}))
        if live != self._live:
            log.info("members: %s", ", ".join(live))
            self._live = live
            self._owners.clear()

    def start(self) -> None:
        """Heartbeat every interval (and drop members whose heartbeat expired)."""
        self._task = asyncio.create_task(self._beat(), name="membership")

    async def stop(self) -> None:
        """Stop the heartbeat and withdraw (the others re-own this member's accounts)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await asyncio.wait_for(self._kv.delete(MEMBER_PREFIX + self.worker_id), 1.0)

    async def _beat(self) -> None:
        while True:
            expires = time.time_ns() // 1_000_000 + self._ttl_ms
            try:
                await asyncio.wait_for(
                    self._kv.put(
                        MEMBER_PREFIX + self.worker_id,
                        self._encoder.encode(MemberValue(self.worker_id, expires)),
                    ),
                    1.0,
                )
            except (nats.errors.Error, TimeoutError) as exc:
                log.debug("membership heartbeat failed: %r", exc)
            self._refresh()
            await asyncio.sleep(self._interval)
