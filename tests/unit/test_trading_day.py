"""RISK_DAY_RESET: when the trading day starts, parsed and validated at start."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from risk_worker.domain.types import utc_day
from risk_worker.errors import ConfigError
from risk_worker.service.settings import load_settings
from risk_worker.service.trading_day import ZonedTradingDay, parse_day_reset, trading_day_function


def ms(text: str) -> int:
    """An ISO time with offset → ms since epoch."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_trading_day_when_default_then_utc_day_itself() -> None:
    assert trading_day_function("00:00 UTC") is utc_day
    assert load_settings({}).risk_config().trading_day is utc_day


@pytest.mark.parametrize(
    ("before", "at"),
    [
        # 17:00 New York is 22:00 UTC in winter (EST) and 21:00 UTC in summer (EDT)
        ("2024-01-15T16:59:59.999-05:00", "2024-01-15T17:00:00-05:00"),
        ("2024-07-15T16:59:59.999-04:00", "2024-07-15T17:00:00-04:00"),
        # the days around the daylight-saving changes of 2024 (10 March, 3 November)
        ("2024-03-10T16:59:59.999-04:00", "2024-03-10T17:00:00-04:00"),
        ("2024-11-03T16:59:59.999-05:00", "2024-11-03T17:00:00-05:00"),
    ],
)
def test_trading_day_when_17_new_york_then_changes_exactly_at_17_local(
    before: str, at: str
) -> None:
    day = trading_day_function("17:00 America/New_York")
    assert day(ms(at)) == day(ms(before)) + 1
    # numbered by the local date it starts on
    assert day(ms(at)) == utc_day(ms(at[:10] + "T00:00:00+00:00"))


def test_trading_day_when_queried_in_any_order_then_same_as_a_fresh_computation() -> None:
    rng = random.Random(7)
    stamps = [rng.randrange(1_600_000_000_000, 1_800_000_000_000) for _ in range(500)]
    stamps += [s + d for s in stamps[:50] for d in (-1, 0, 1)]
    cached = trading_day_function("09:30 Europe/Berlin")
    for stamp in stamps:
        assert cached(stamp) == trading_day_function("09:30 Europe/Berlin")(stamp), stamp


def test_trading_day_when_midnight_in_another_zone_then_changes_at_its_midnight() -> None:
    tokyo = trading_day_function("00:00 Asia/Tokyo")  # 15:00 UTC, no daylight saving
    assert tokyo(ms("2024-05-01T15:00:00+00:00")) == tokyo(ms("2024-05-01T14:59:59+00:00")) + 1
    assert tokyo(ms("2024-05-01T15:00:00+00:00")) == utc_day(ms("2024-05-02T00:00:00+00:00"))


def test_trading_day_when_utc_at_another_time_then_changes_at_that_time() -> None:
    day = trading_day_function("22:00 UTC")
    assert day(ms("2024-05-01T22:00:00+00:00")) == day(ms("2024-05-01T21:59:59+00:00")) + 1


def test_settings_when_day_reset_given_then_normalized_and_built() -> None:
    s = load_settings({"RISK_DAY_RESET": "  17:00   America/New_York "})
    assert s.day_reset == "17:00 America/New_York"
    built = s.risk_config().trading_day
    assert built == ZonedTradingDay(*parse_day_reset("17:00 America/New_York"))


@pytest.mark.parametrize(
    "value",
    [
        "17:00",
        "5pm America/New_York",
        "24:00 UTC",
        "17:60 UTC",
        "7:00 UTC",
        "17:00 Mars/Olympus",
        "",
    ],
)
def test_settings_when_day_reset_invalid_then_config_error_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"RISK_DAY_RESET": value})
    assert "RISK_DAY_RESET" in str(caught.value)
