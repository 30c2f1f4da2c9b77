"""A lease in the ``risk_control`` bucket: which single instance publishes the monitor's output.

Every instance evaluates every account (so peaks and breaker counts stay current everywhere),
but only the lease holder publishes ``risk.metrics``, alerts and automatic trips. The holder
renews the lease every monitor interval with compare-and-set on the revision it read; another
instance takes it over once it has expired (``ttl``), so a dead holder is replaced within
``ttl`` + one interval. A holder that fails to renew stops publishing at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

LEASE_KEY = "lease.monitor"


class LeaseValue(msgspec.Struct, frozen=True):
    """Who holds the lease and until when (ms since epoch, the holder's clock)."""

    holder: str
    expires_ms: int


class Lease:
    """Acquire and renew one lease key.

    Args:
        kv: the bucket.
        holder: this instance's id.
        ttl: seconds a lease lasts without renewal (keep it > 2 monitor intervals).
        key: the lease key.
    """

    def __init__(self, kv: KeyValue, holder: str, ttl: float, key: str = LEASE_KEY) -> None:
        self._kv = kv
        self._holder = holder
        self._ttl_ms = int(ttl * 1000)
        self._key = key
        self._held = False
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(LeaseValue)

    @property
    def held(self) -> bool:
        """Whether this instance held the lease at the last :meth:`renew`."""
        return self._held

    async def renew(self, timeout: float = 1.0) -> bool:  # noqa: ASYNC109
        """Renew (or acquire when free or expired); True when this instance holds it now.

        Any failure to confirm (the bucket unreachable, a lost compare-and-set) means not held.
        """
        try:
            held = await asyncio.wait_for(self._try(), timeout)
        except (nats.errors.Error, TimeoutError) as exc:
            log.debug("lease %s not renewed: %r", self._key, exc)
            held = False
        if held and not self._held:
            log.info("acquired the monitor lease (%s)", self._holder)
        elif self._held and not held:
            log.warning("lost the monitor lease (%s)", self._holder)
        self._held = held
        return held

    async def release(self) -> None:
        """Give the lease up now (at a graceful stop) so another instance takes over at once."""
        if not self._held:
            return
        self._held = False
        try:
            entry = await self._kv.get(self._key)
            current = self._decode(entry.value)
            if current is not None and current.holder == self._holder:
                await self._kv.update(self._key, self._encode(0), last=entry.revision)
        except (nats.errors.Error, TimeoutError) as exc:
            log.debug("lease %s not released: %r", self._key, exc)

    async def _try(self) -> bool:
        now = time.time_ns() // 1_000_000
        try:
            entry = await self._kv.get(self._key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            try:
                await self._kv.create(self._key, self._encode(now + self._ttl_ms))
            except nats.js.errors.KeyWrongLastSequenceError:
                return False  # someone else created it first
            return True
        current = self._decode(entry.value)
        if current is not None and current.holder != self._holder and current.expires_ms > now:
            return False
        try:
            await self._kv.update(self._key, self._encode(now + self._ttl_ms), last=entry.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    def _encode(self, expires_ms: int) -> bytes:
        return self._encoder.encode(LeaseValue(self._holder, expires_ms))

    def _decode(self, raw: bytes | None) -> LeaseValue | None:
        if not raw:
            return None
        try:
            return self._decoder.decode(raw)
        except msgspec.MsgspecError:
            return None
