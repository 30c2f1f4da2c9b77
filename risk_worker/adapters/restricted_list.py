"""The restricted list in the ``risk_control`` bucket, as operators change and read it.

``restricted.<symbol>`` restricts a symbol for every account, ``restricted.account.<id>.<symbol>``
for one (subjects.md §7); the value is :class:`~risk_worker.domain.restricted.Restriction`.
Only the operators' NATS user may write these keys (docker/nats-server.conf). Adding is an
unconditional put (the safe direction); removing is a delete marker, compare-and-set on the
revision read, that carries who removed it and why in its body, so the bucket's history (16
revisions per key) keeps the removal on record.
"""

from __future__ import annotations

import re
import time

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.kv import KV_DEL, KV_OP, KeyValue

from risk_worker.adapters.kv_bucket import (
    bucket_keys,
    decode_restriction,
    encode_state,
    live_entry,
    open_bucket,
)
from risk_worker.domain.restricted import RESTRICTED_PREFIX, Restriction, restricted_key
from risk_worker.domain.types import IDENTIFIER_PATTERN
from risk_worker.errors import StaleRevisionError, TradingStateError

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def check_identifier(what: str, value: str | None) -> None:
    """Refuse an id that cannot be a KV key token (subjects.md §1, identifiers).

    Raises:
        ValueError: ``value`` is not 1-64 characters of ``A-Z a-z 0-9 _ - / =``; names ``what``.
    """
    if value is not None and not _IDENTIFIER.match(value):
        raise ValueError(f"{what} {value!r}: 1-64 characters of A-Z a-z 0-9 _ - / = expected")


async def restrict(
    nc: Client, bucket: str, symbol: str, reason: str, by: str, account_id: str | None = None
) -> int:
    """Put ``symbol`` on the restricted list (globally, or for ``account_id``); the revision.

    Raises:
        ValueError: a bad symbol or account id.
        TradingStateError: the bucket could not be written.
    """
    check_identifier("symbol", symbol)
    check_identifier("account", account_id)
    kv = await open_bucket(nc.jetstream(), bucket)
    value = Restriction(reason, by, time.time_ns() // 1_000_000)
    try:
        return int(await kv.put(restricted_key(symbol, account_id), encode_state(value)))
    except nats.errors.Error as exc:
        raise TradingStateError(f"cannot restrict {symbol}: {exc!r}") from exc


async def unrestrict(
    nc: Client,
    bucket: str,
    symbol: str,
    by: str,
    account_id: str | None = None,
    reason: str = "",
) -> int | None:
    """Take ``symbol`` off the restricted list (globally, or for ``account_id``).

    Returns:
        The delete marker's revision; None when the symbol was not restricted there.

    Raises:
        ValueError: a bad symbol or account id.
        StaleRevisionError: the key changed between the read and the delete (read again).
        TradingStateError: the bucket could not be read or written.
    """
    check_identifier("symbol", symbol)
    check_identifier("account", account_id)
    kv = await open_bucket(nc.jetstream(), bucket)
    key = restricted_key(symbol, account_id)
    entry = await live_entry(kv, key)
    if entry is None:
        return None
    body = encode_state(Restriction(reason, by, time.time_ns() // 1_000_000))
    headers = {KV_OP: KV_DEL, "Nats-Expected-Last-Subject-Sequence": str(entry.revision)}
    try:
        ack = await nc.jetstream().publish(f"$KV.{bucket}.{key}", body, headers=headers)
    except nats.js.errors.APIError as exc:
        if exc.err_code == 10071:  # wrong last sequence
            raise StaleRevisionError(
                f"{key} changed since revision {entry.revision}; read it again"
            ) from exc
        raise TradingStateError(f"cannot write {key}: {exc!r}") from exc
    except nats.errors.Error as exc:
        raise TradingStateError(f"cannot write {key}: {exc!r}") from exc
    return int(ack.seq)


async def restrictions(nc: Client, bucket: str) -> list[tuple[str, Restriction, int]]:
    """Every (key, restriction, revision) of the restricted list, sorted by key.

    Raises:
        TradingStateError: the bucket could not be read.
    """
    kv = await open_bucket(nc.jetstream(), bucket)
    return await read_restrictions(nc, kv, bucket)


async def read_restrictions(
    nc: Client, kv: KeyValue, bucket: str
) -> list[tuple[str, Restriction, int]]:
    """:func:`restrictions` on a bound bucket (``kv``, named ``bucket``)."""
    keys = await bucket_keys(nc, bucket, RESTRICTED_PREFIX)
    out = []
    for key in keys:
        entry = await live_entry(kv, key)
        if entry is None:
            continue
        value = decode_restriction(entry.value)
        if value is not None:
            out.append((key, value, int(entry.revision or 0)))
    return out
