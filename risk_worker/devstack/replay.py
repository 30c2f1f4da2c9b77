"""Recorded market data as ticks: read a CSV, then publish it on `market.tick.<symbol>`.

Used by `risk-worker replay FILE [--speed X] [--symbol-map ETHUSD=ETHUSDT]`. Two CSV layouts are
recognised by their header:

- trades, with at least `symbol,price,trade_time_ms` (Binance spot trades: one tick per trade,
  timestamped with the exchange's trade time);
- one-minute bars, with at least `ts_utc,symbol,close` (Coinbase bars: one tick per bar at its
  close price, timestamped with the bar's start, an ISO 8601 UTC time such as
  `2017-09-04T00:00:00Z`).
"""

from __future__ import annotations

import asyncio
import csv
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import msgspec
from nats.aio.client import Client

TRADE_COLUMNS = ("symbol", "price", "trade_time_ms")
BAR_COLUMNS = ("ts_utc", "symbol", "close")
FAST_FLUSH_EVERY = 1000
PROGRESS_EVERY = 1000
PROGRESS_INTERVAL_S = 0.5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BAD_SYMBOL_CHARS = frozenset(" \t\r\n.*>")
_ENCODER = msgspec.json.Encoder()
_T = TypeVar("_T")


class ReplayTick(msgspec.Struct, frozen=True):
    """One market price observation, as published on `market.tick.<symbol>`.

    Attributes:
        symbol: Instrument symbol after mapping, e.g. `ETHUSDT`.
        price: Trade or close price in quote currency; finite and > 0.
        timestamp: Time of the observation in ms since the Unix epoch (UTC).
    """

    symbol: str
    price: float
    timestamp: int


def parse_symbol_map(items: Sequence[str]) -> dict[str, str]:
    """Parses `FROM=TO` items (e.g. `ETHUSD=ETHUSDT`) into a mapping.

    Args:
        items: Strings of the form `FROM=TO`; surrounding whitespace is ignored.

    Returns:
        A dict from recorded symbol to published symbol.

    Raises:
        ValueError: For an item without exactly one `=`, with an empty or invalid side, or
            mapping the same symbol twice to different targets.
    """
    mapping: dict[str, str] = {}
    for item in items:
        source, sep, target = (part.strip() for part in item.partition("="))
        if not sep or "=" in target or not _is_symbol(source) or not _is_symbol(target):
            raise ValueError(f"bad symbol mapping {item!r}: expected FROM=TO, e.g. ETHUSD=ETHUSDT")
        if mapping.get(source, target) != target:
            raise ValueError(
                f"symbol {source!r} is mapped twice: to {mapping[source]!r}, {target!r}"
            )
        mapping[source] = target
    return mapping


def read_ticks(
    path: Path,
    symbol_map: Mapping[str, str] | None = None,
    symbols: Collection[str] | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[ReplayTick]:
    """Reads a trades or one-minute-bars CSV into ticks sorted by timestamp.

    Args:
        path: CSV file with a header row (layouts in the module docstring).
        symbol_map: Recorded symbol → published symbol, applied before filtering.
        symbols: Keep only these (mapped) symbols; None keeps all.
        start_ms: Keep ticks with timestamp >= start_ms (ms since epoch); None: no bound.
        end_ms: Keep ticks with timestamp < end_ms (ms since epoch); None: no bound.

    Returns:
        The ticks in timestamp order; rows with equal timestamps keep their file order.

    Raises:
        ValueError: For an unknown header, or a malformed row (wrong number of fields, empty or
            invalid symbol, timestamp that does not parse, price not finite and > 0); the message
            names the file, the line number and the column.
        OSError: When the file cannot be read.
    """
    mapping = symbol_map or {}
    wanted = None if symbols is None else frozenset(symbols)
    ticks: list[ReplayTick] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [name.strip() for name in next(reader, [])]
        if set(TRADE_COLUMNS) <= set(header):
            time_col, price_col, parse_time = "trade_time_ms", "price", _parse_ms
        elif set(BAR_COLUMNS) <= set(header):
            time_col, price_col, parse_time = "ts_utc", "close", _parse_utc
        else:
            raise ValueError(
                f"{path}, line 1: unrecognised header {header}; expected columns "
                f"{','.join(TRADE_COLUMNS)} (trades) or {','.join(BAR_COLUMNS)} (one-minute bars)"
            )
        i_sym, i_time, i_price = (header.index(c) for c in ("symbol", time_col, price_col))
        for row in reader:
            if not row:
                continue
            where = f"{path}, line {reader.line_num}"
            if len(row) != len(header):
                raise ValueError(f"{where}: expected {len(header)} fields, got {len(row)}")
            raw_symbol = row[i_sym].strip()
            symbol = mapping.get(raw_symbol, raw_symbol)
            if not _is_symbol(symbol):
                raise ValueError(f"{where}, column symbol: invalid symbol {row[i_sym]!r}")
            timestamp = _field(where, time_col, row[i_time], parse_time)
            price = _field(where, price_col, row[i_price], _parse_price)
            if wanted is not None and symbol not in wanted:
                continue
            if (start_ms is not None and timestamp < start_ms) or (
                end_ms is not None and timestamp >= end_ms
            ):
                continue
            ticks.append(ReplayTick(symbol=symbol, price=price, timestamp=timestamp))
    ticks.sort(key=lambda tick: tick.timestamp)
    return ticks


async def publish_ticks(
    nc: Client,
    ticks: Sequence[ReplayTick],
    speed: float | None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Publishes ticks as JSON `{"symbol", "price", "timestamp"}` on `market.tick.<symbol>`.

    Args:
        nc: A connected NATS client.
        ticks: Ticks in timestamp order.
        speed: None or 0 publishes as fast as possible (flushing every 1000 messages); otherwise
            the recorded spacing is divided by `speed` (60 replays one recorded minute per second).
        on_progress: Called with the number published so far every 1000 messages or 0.5 s,
            whichever comes first, and once at the end.

    Returns:
        The number of messages published.

    Raises:
        ValueError: When `speed` is negative or not finite.
    """
    if speed is not None and (not math.isfinite(speed) or speed < 0):
        raise ValueError(f"speed must be a finite number >= 0, got {speed}")
    rate = speed or 0.0
    loop = asyncio.get_running_loop()
    start_wall = loop.time()
    first_ms = ticks[0].timestamp if ticks else 0
    last_progress = time.monotonic()
    count = 0
    for tick in ticks:
        if rate:
            delay = start_wall + (tick.timestamp - first_ms) / 1000.0 / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await nc.publish(f"market.tick.{tick.symbol}", _ENCODER.encode(tick))
        count += 1
        if not rate and count % FAST_FLUSH_EVERY == 0:
            await nc.flush()
        if on_progress is not None and (
            count % PROGRESS_EVERY == 0 or time.monotonic() - last_progress >= PROGRESS_INTERVAL_S
        ):
            on_progress(count)
            last_progress = time.monotonic()
    await nc.flush()
    if on_progress is not None:
        on_progress(count)
    return count


def _is_symbol(symbol: str) -> bool:
    """A symbol must be non-empty and usable as one NATS subject token."""
    return bool(symbol) and not (_BAD_SYMBOL_CHARS & set(symbol))


def _field(where: str, column: str, raw: str, parse: Callable[[str], _T]) -> _T:
    try:
        return parse(raw.strip())
    except ValueError as exc:
        raise ValueError(f"{where}, column {column}: {exc} (value {raw!r})") from None


def _parse_ms(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("expected an integer time in ms since epoch") from None


def _parse_utc(raw: str) -> int:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError("expected an ISO 8601 UTC time like 2017-09-04T00:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _parse_price(raw: str) -> float:
    try:
        price = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(price) or price <= 0:
        raise ValueError("price must be finite and > 0")
    return price
