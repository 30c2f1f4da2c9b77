"""The ``risk_control`` JetStream KV bucket: bind or create, read, trip and clear.

Used by the worker (automatic trips) and by the CLI (operator trips and clears). Clears are
compare-and-set on the revision that was read, so an old clear never undoes a newer trip.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from risk_worker.domain.restricted import Restriction
from risk_worker.domain.trading_state import StateValue
from risk_worker.domain.types import StateSource, TradingState
from risk_worker.errors import StaleRevisionError, TradingStateError

log = logging.getLogger(__name__)

BUCKET_HISTORY = 16
"""Revisions kept per key: the recent trips and clears stay readable in the bucket."""

KEYS_TIMEOUT = 5.0
"""Seconds to wait for one page of a bucket's key listing (nats-py's JetStream timeout)."""

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(StateValue)
_RESTRICTION = msgspec.json.Decoder(Restriction)


async def open_bucket(js: JetStreamContext, name: str, replicas: int | None = None) -> KeyValue:
    """Bind the bucket, creating it (file storage, ``replicas`` copies) only when it does not
    exist.

    ``create_key_value`` is not create-or-bind (it fails on a different config), hence bind
    first; a concurrent creator is tolerated by binding again. An existing bucket keeps its
    replica count: when it differs from ``replicas`` a warning names both (the worker's NATS
    user may not update the bucket's stream, so an operator changes it; see the README).
    ``replicas`` None (the CLI): whatever the bucket has, created at 1 when missing.

    Raises:
        TradingStateError: the bucket can be neither bound nor created (e.g. more than one
            replica asked of a server that is not in a JetStream cluster).
    """
    try:
        kv = await js.key_value(name)
    except nats.js.errors.BucketNotFoundError:
        pass
    except nats.errors.Error as exc:
        raise TradingStateError(f"cannot bind KV bucket {name!r}: {exc!r}") from exc
    else:
        if replicas is not None:
            await _compare_replicas(kv, name, replicas)
        return kv
    try:
        return await js.create_key_value(
            bucket=name,
            history=BUCKET_HISTORY,
            replicas=replicas or 1,
            description="risk-worker trading states (emergency stop)",
        )
    except nats.errors.Error as exc:
        try:
            return await js.key_value(name)
        except nats.errors.Error:
            raise TradingStateError(
                f"cannot create KV bucket {name!r} with {replicas or 1} replica(s) "
                f"(RISK_KV_REPLICAS): {exc!r}"
            ) from exc


async def _compare_replicas(kv: KeyValue, name: str, replicas: int) -> None:
    """Warn when the bound bucket's stream keeps another number of replicas than asked."""
    try:
        have = (await kv.status()).stream_info.config.num_replicas or 1
    except nats.errors.Error as exc:
        log.warning("cannot read KV bucket %r's replica count: %r", name, exc)
        return
    if have != replicas:
        log.warning(
            "KV bucket %r has %d replica(s) but RISK_KV_REPLICAS is %d: the bucket is used as "
            "it is; an operator changes its stream KV_%s to %d replicas (the worker may not)",
            name,
            have,
            replicas,
            name,
            replicas,
        )


def decode_state(raw: bytes | None) -> StateValue | None:
    """Decode a stored value; None for an empty value (delete or purge marker).

    A value that cannot be decoded reads as HALTED: the worker cannot know, so it fails closed.
    """
    if not raw:
        return None
    try:
        return _DECODER.decode(raw)
    except msgspec.MsgspecError as exc:
        log.error("unreadable trading-state value %r: %s; treating it as HALTED", raw[:200], exc)
        return StateValue(
            TradingState.HALTED,
            f"unreadable trading-state value: {exc}",
            "risk-worker",
            0,
            StateSource.POLICY,
        )


def decode_restriction(raw: bytes | None) -> Restriction | None:
    """Decode a restricted-list value; None for an empty value (delete or purge marker).

    A value that cannot be decoded still restricts (fail closed), with a reason saying so.
    """
    if not raw:
        return None
    try:
        return _RESTRICTION.decode(raw)
    except msgspec.MsgspecError as exc:
        log.error("unreadable restricted-list value %r: %s; restricting", raw[:200], exc)
        return Restriction(f"unreadable restricted-list value: {exc}", "risk-worker", 0)


def encode_state(value: StateValue | Restriction) -> bytes:
    """JSON bytes of a trading-state or restricted-list value."""
    return _ENCODER.encode(value)


async def read_state(kv: KeyValue, key: str) -> tuple[StateValue | None, int]:
    """(value or None when ACTIVE/absent, revision or 0 when the key never existed)."""
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyDeletedError as exc:
        return None, int(exc.entry.revision or 0)
    except nats.js.errors.KeyNotFoundError:
        return None, 0
    except nats.errors.Error as exc:
        raise TradingStateError(f"cannot read {key}: {exc!r}") from exc
    return decode_state(entry.value), int(entry.revision or 0)


async def live_entry(kv: KeyValue, key: str) -> KeyValue.Entry | None:
    """The key's entry, or None when it is deleted, purged or was never written.

    Raises:
        TradingStateError: the bucket could not be read.
    """
    try:
        return await kv.get(key)
    except (nats.js.errors.KeyDeletedError, nats.js.errors.KeyNotFoundError):
        return None
    except nats.errors.Error as exc:
        raise TradingStateError(f"cannot read {key}: {exc!r}") from exc


async def read_live_state(kv: KeyValue, key: str) -> tuple[StateValue | None, int] | None:
    """:func:`read_state`, or None when the key is deleted, purged or was never written (a
    key from :func:`bucket_keys` whose last message is a marker)."""
    entry = await live_entry(kv, key)
    return None if entry is None else (decode_state(entry.value), int(entry.revision or 0))


async def write_state(kv: KeyValue, key: str, value: StateValue) -> int:
    """Write a trip (unconditionally: tripping is always the safe direction); the revision."""
    try:
        return int(await kv.put(key, encode_state(value)))
    except nats.errors.Error as exc:
        raise TradingStateError(f"cannot write {key}: {exc!r}") from exc


async def clear_state(kv: KeyValue, key: str, value: StateValue, revision: int) -> int:
    """Compare-and-set ``value`` (ACTIVE) over the revision that was read; the new revision.

    Raises:
        StaleRevisionError: the key changed since ``revision`` (e.g. a newer trip).
        TradingStateError: the bucket could not be written.
    """
    try:
        return int(await kv.update(key, encode_state(value), last=revision))
    except nats.js.errors.KeyWrongLastSequenceError as exc:
        raise StaleRevisionError(
            f"{key} changed since revision {revision}; read it again before clearing"
        ) from exc
    except nats.errors.Error as exc:
        raise TradingStateError(f"cannot write {key}: {exc!r}") from exc


class _SubjectsPage(msgspec.Struct):
    """One page of ``$JS.API.STREAM.INFO`` with ``subjects_filter`` (nats-server's
    JSApiStreamInfoResponse: ``state.subjects`` maps subject to message count; ``total`` is
    how many subjects matched, ``offset`` where this page starts)."""

    state: dict[str, Any] = {}
    total: int = 0
    offset: int = 0
    error: dict[str, Any] | None = None


async def bucket_keys(nc: Client, bucket: str, prefix: str = "") -> list[str]:
    """Every key of ``bucket`` that starts with ``prefix`` (empty, or ending in ``.``) and
    has a message in the bucket's stream, sorted. A deleted or purged key is listed too (its
    marker is a message): the caller reads each key and skips those.

    Read from the stream's subject counts (``$JS.API.STREAM.INFO.KV_<bucket>`` with
    ``subjects_filter``, paged by ``offset``), not from nats-py's ``KeyValue.keys()``: that
    one ends its listing at the first "nothing pending" it hears, and the consumer-info reply
    that says so can overtake the deliveries it counted, so it can return a short or empty
    list (seen once in CI: `emergency status` missing an account's stop). It also creates a
    consumer on every call.

    Raises:
        TradingStateError: the stream could not be read (no JetStream, no bucket, timeout).
    """
    stream, pre = f"KV_{bucket}", f"$KV.{bucket}."
    keys: list[str] = []
    while True:
        request = {"subjects_filter": f"{pre}{prefix}>", "offset": len(keys)}
        try:
            reply = await nc.request(
                f"$JS.API.STREAM.INFO.{stream}", _ENCODER.encode(request), timeout=KEYS_TIMEOUT
            )
            page = msgspec.json.decode(reply.data, type=_SubjectsPage)
        except (nats.errors.Error, msgspec.MsgspecError) as exc:
            raise TradingStateError(f"cannot list the keys of {bucket!r}: {exc!r}") from exc
        if page.error is not None:
            raise TradingStateError(f"cannot list the keys of {bucket!r}: {page.error}")
        subjects = page.state.get("subjects") or {}
        keys.extend(subject.removeprefix(pre) for subject in subjects)
        if not subjects or len(keys) >= page.total:
            return sorted(set(keys))
