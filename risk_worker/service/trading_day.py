"""The trading day: when the day-start equity behind ``drawdown_daily`` and ``daily_pnl`` resets.

``RISK_DAY_RESET`` is ``HH:MM <IANA zone>`` (default ``00:00 UTC``), e.g. ``17:00
America/New_York`` for the FX day. The zone's rules (daylight saving) come from the system's
zoneinfo files (or the ``tzdata`` package), read here, at start, never by the decision core: it
receives :class:`ZonedTradingDay` as a plain "trading day of a timestamp" function. ``UTC``
needs no zone files.

A trading day is numbered by the local date on which it starts, as days since 1970-01-01, so
with the default reset the number is :func:`~risk_worker.domain.types.utc_day`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from risk_worker.domain.types import utc_day

DEFAULT_DAY_RESET = "00:00 UTC"
_RESET = re.compile(r"\A([01][0-9]|2[0-3]):([0-5][0-9])\s+(\S+)\Z")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ONE_DAY = timedelta(days=1)
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"})


def parse_day_reset(text: str) -> tuple[time, str, tzinfo]:
    """``HH:MM <IANA zone>`` → (local reset time, zone name, zone).

    Raises:
        ValueError: not ``HH:MM`` (00:00-23:59) and a zone name, or a zone the system does not
            know.
    """
    match = _RESET.match(text.strip())
    if match is None:
        raise ValueError("must be HH:MM and an IANA time zone, e.g. '17:00 America/New_York'")
    reset, name = time(int(match[1]), int(match[2])), match[3]
    if name in _UTC_NAMES:
        return reset, name, UTC
    try:
        return reset, name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


class ZonedTradingDay:
    """Trading day of a timestamp, the day changing daily at a local time in a time zone.

    Call it with a timestamp (ms since epoch) for the day number (days since 1970-01-01 of the
    local date the trading day starts on). The day being asked about is kept, so the check
    path pays one comparison; another day costs a time-zone conversion. On a daylight-saving
    change the reset follows the local clock (a reset time that does not exist that day falls
    after the jump, as Python's ``datetime`` resolves it).

    Args:
        reset: the local time of day the trading day starts at.
        name: the zone's IANA name (for ``repr`` and equality).
        zone: the time zone.
    """

    __slots__ = ("_day", "_end", "_start", "_zone", "name", "reset")

    def __init__(self, reset: time, name: str, zone: tzinfo) -> None:
        self.reset = reset
        self.name = name
        self._zone = zone
        self._start = self._end = 0  # empty window: the first call computes
        self._day = 0

    def __repr__(self) -> str:
        return f"ZonedTradingDay({self.reset:%H:%M} {self.name})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ZonedTradingDay):
            return NotImplemented
        return (self.reset, self.name) == (other.reset, other.name)

    def __hash__(self) -> int:
        return hash((self.reset, self.name))

    def __call__(self, timestamp_ms: int) -> int:
        if self._start <= timestamp_ms < self._end:
            return self._day
        local = datetime.fromtimestamp(timestamp_ms // 1000, self._zone).date()
        start = self._reset_ms(local)
        while timestamp_ms < start:
            local -= _ONE_DAY
            start = self._reset_ms(local)
        end = self._reset_ms(local + _ONE_DAY)
        while timestamp_ms >= end:
            local += _ONE_DAY
            start, end = end, self._reset_ms(local + _ONE_DAY)
        self._start, self._end = start, end
        self._day = local.toordinal() - _EPOCH_ORDINAL
        return self._day

    def _reset_ms(self, day: date) -> int:
        """The reset moment of a local date, ms since epoch."""
        moment = datetime.combine(day, self.reset, self._zone)
        return int(moment.timestamp()) * 1000


def trading_day_function(text: str) -> Callable[[int], int]:
    """The trading-day function of a ``RISK_DAY_RESET`` value.

    ``00:00`` in UTC is :func:`~risk_worker.domain.types.utc_day` itself (no conversion);
    anything else a :class:`ZonedTradingDay`.

    Raises:
        ValueError: as :func:`parse_day_reset`.
    """
    reset, name, zone = parse_day_reset(text)
    if reset == time(0, 0) and zone is UTC:
        return utc_day
    return ZonedTradingDay(reset, name, zone)
