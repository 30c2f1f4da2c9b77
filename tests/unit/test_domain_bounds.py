"""Bounds of inbound and derived numbers, and the book never recording a non-finite peak."""

from __future__ import annotations

import math

import pytest

from risk_worker.domain.book import Account
from risk_worker.domain.equity_window import observe_equity

T0 = 1_700_000_000_000


@pytest.mark.parametrize("equity", [math.inf, -math.inf, math.nan, 1e308])
def test_observe_equity_when_not_finite_or_beyond_bounds_then_peak_and_day_start_unchanged(
    equity: float,
) -> None:
    acct = Account("a")
    acct.balance_known = True
    observe_equity(acct, 100_000.0, T0)
    observe_equity(acct, equity, T0 + 1_000)
    assert (acct.peak_equity, acct.day_start_equity) == (100_000.0, 100_000.0)


def test_observe_equity_when_first_observation_not_finite_then_nothing_recorded() -> None:
    acct = Account("a")
    acct.balance_known = True
    observe_equity(acct, math.inf, T0)
    assert (acct.peak_equity, acct.day_start_equity, acct.trading_day) == (None, None, None)
