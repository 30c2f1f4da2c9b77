"""Redis store of the VaR samples: kept across restarts, written by ``risk-worker var seed``.

Keys (prefix ``risk:``; times in ms since the epoch, prices in quote per base unit):

* ``var:{symbol}`` — STRING, JSON ``[[boundary_ms, price], …]`` oldest first, at most
  ``RISK_VAR_WINDOW`` pairs; ``var:index`` — SET of the symbols. No TTL.

Every instance writes the samples it holds after each sampling pass (the same marks give the
same samples; the last writer wins). ``risk-worker var seed`` merges recorded bars into them and
publishes ``risk.control.var.reload``; each instance then merges the stored samples into its
own history (:func:`merge_samples`). The adapter translates; it decides nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec
from redis.asyncio import Redis

from risk_worker.domain.returns import ReturnHistory

VAR_RELOAD_SUBJECT = "risk.control.var.reload"
"""Published (empty body) after the stored samples changed; every worker reloads them."""

Samples = dict[str, list[tuple[int, float]]]
"""symbol → [(boundary ms since epoch, price)], oldest first."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(list[tuple[int, float]]).decode


async def load_samples(client: Redis, key_prefix: str = "risk:") -> Samples:
    """Every stored symbol's samples; a value that does not decode is skipped.

    Raises:
        redis.exceptions.RedisError: Redis could not be read.
    """
    members = await client.smembers(key_prefix + "var:index")
    symbols = sorted(m if isinstance(m, str) else m.decode() for m in members)
    if not symbols:
        return {}
    values = await client.mget([f"{key_prefix}var:{s}" for s in symbols])
    out: Samples = {}
    for symbol, raw in zip(symbols, values, strict=True):
        if raw is None:
            continue
        try:
            out[symbol] = _decode(raw)
        except msgspec.DecodeError:
            continue
    return out


async def save_samples(
    client: Redis, samples: Mapping[str, Iterable[tuple[int, float]]], key_prefix: str = "risk:"
) -> None:
    """Write ``samples`` (each symbol's whole list replaces the stored one) in one pipeline.

    Raises:
        redis.exceptions.RedisError: Redis could not be written.
    """
    if not samples:
        return
    pipe = client.pipeline(transaction=False)
    for symbol, rows in samples.items():
        pipe.set(f"{key_prefix}var:{symbol}", _encode(list(rows)))
    pipe.sadd(key_prefix + "var:index", *samples)
    await pipe.execute()


def merge_samples(history: ReturnHistory, samples: Samples) -> int:
    """Record stored ``samples`` into ``history`` (a sample at a boundary it holds replaces
    it), then rebuild its aligned vectors; returns how many were recorded."""
    recorded = 0
    for symbol, rows in samples.items():
        for boundary_ms, price in rows:
            recorded += history.record(symbol, boundary_ms, price)
    history.refresh()
    return recorded


def history_samples(history: ReturnHistory, symbols: Iterable[str] | None = None) -> Samples:
    """The samples ``history`` holds (of ``symbols``, or all)."""
    return {s: history.samples(s) for s in (history.symbols() if symbols is None else symbols)}
