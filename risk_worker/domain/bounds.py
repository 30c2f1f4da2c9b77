"""Numeric bounds of every inbound and restored number (documented in subjects.md §1).

Bounded inputs keep every derived number finite: a notional is at most
``QUANTITY_MAX × PRICE_MAX`` = 1e24 quote, and sums of thousands of those stay far from the
double range (≈ 1.8e308), so a mid, an equity, a peak or a drawdown can never overflow.

- prices (quote per base unit): ``PRICE_MIN`` ≤ p ≤ ``PRICE_MAX`` (0 only where a field
  explicitly means "none": a flat position's entry price, a market order's price);
- quantities (base units): 0 < |q| ≤ ``QUANTITY_MAX`` (signed where the field is);
- money (balances, PnL, equity, fees; quote): |x| ≤ ``MONEY_MAX``; derived equity, peak and
  day start (quote): finite, |x| ≤ ``EQUITY_MAX``;
- timestamps (ms since the Unix epoch): 0 ≤ t ≤ ``MILLIS_MAX``.
"""

from __future__ import annotations

import re
from typing import Final

from risk_worker.domain.types import IDENTIFIER_PATTERN

PRICE_MIN: Final = 1e-12
"""Smallest accepted price (quote per base unit); rules out denormals such as 5e-324."""
PRICE_MAX: Final = 1e12
"""Largest accepted price (quote per base unit)."""
QUANTITY_MAX: Final = 1e12
"""Largest accepted |quantity| (base units)."""
MONEY_MAX: Final = 1e15
"""Largest accepted |amount| of money (quote): balances, PnL, equity, fees."""
EQUITY_MAX: Final = 1e30
"""Largest |equity| (quote) the book records as a peak or day start, or restores: derived from
bounded inputs (one position's value is at most 1e24), so only corrupt state reaches it."""
MILLIS_MAX: Final = 4_102_444_800_000
"""Largest accepted timestamp: 2100-01-01T00:00:00Z in ms since the Unix epoch."""

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def is_price(x: float) -> bool:
    """Whether ``x`` is a price in [``PRICE_MIN``, ``PRICE_MAX``] (False for NaN)."""
    return PRICE_MIN <= x <= PRICE_MAX


def is_quantity(x: float) -> bool:
    """Whether ``x`` is a signed quantity with |x| ≤ ``QUANTITY_MAX`` (False for NaN)."""
    return -QUANTITY_MAX <= x <= QUANTITY_MAX


def is_money(x: float) -> bool:
    """Whether ``x`` is an amount with |x| ≤ ``MONEY_MAX`` (False for NaN and infinities)."""
    return -MONEY_MAX <= x <= MONEY_MAX


def is_equity(x: float) -> bool:
    """Whether ``x`` is a derived equity with |x| ≤ ``EQUITY_MAX`` (False for NaN, infinities)."""
    return -EQUITY_MAX <= x <= EQUITY_MAX


def is_millis(x: int) -> bool:
    """Whether ``x`` is a timestamp in [0, ``MILLIS_MAX``] ms."""
    return 0 <= x <= MILLIS_MAX


def is_identifier(x: str) -> bool:
    """Whether ``x`` is an identifier (1-64 characters of A-Z a-z 0-9 _ - / =)."""
    return _IDENTIFIER.match(x) is not None
