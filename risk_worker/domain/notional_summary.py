"""What a compact check reads of the per-symbol position notionals, without building the dict.

A check whose reply carries no post-trade metrics (a compact approval, issue 16) reads the
position notionals in two places only: the largest (an account-scoped concentration or
position-notional policy) and the order's own symbol (a symbol-scoped one). Building the
symbol → notional dict of every position, copying it for the post-trade metrics and freeing
both was about a fifth of a compiled decision (20 positions: dict stores, boxed floats). So
:func:`~risk_worker.domain.metrics.compute_metrics` can keep, instead of the dict, the two
largest notionals and the symbol of the largest (pre-trade), from which
:func:`~risk_worker.domain.metrics.simulate_fill` derives the post-trade largest and the
order's symbol's notional exactly.

The rule is a fold of ``max`` from 0.0 in the dict's order (NaN never replaces a value:
``x > NaN`` and ``NaN > x`` are both false), as ``readings.symbol_reading`` reads the dict. A
read the summary cannot answer (a symbol other than the one it was made for) raises
``LookupError``: the check then denies ``internal_error``, never reads a wrong value.
``tests/unit/test_domain_notional_summary.py`` holds every reading of a summary equal to the
dict's, bit for bit, on random books, reservations and fills.
"""

from __future__ import annotations


class NotionalSummary:  # noqa: PLW1641 (unhashable, as AccountMetrics: it is mutable)
    """The largest position notionals of an account, in place of the whole dict.

    Attributes:
        largest: the largest worst-case position notional (quote; 0.0 when none is above 0).
        largest_symbol: the symbol that first reached ``largest`` (None when ``largest`` is
            the 0.0 it starts from).
        second: the largest notional of the other symbols (quote; 0.0 when none).
        symbol: the one symbol whose notional ``at_symbol`` holds (the order's, post-trade),
            or None (pre-trade: no symbol can be read).
        at_symbol: that symbol's notional (quote; 0.0 when not held or reserved).
    """

    __slots__ = ("at_symbol", "largest", "largest_symbol", "second", "symbol")

    largest: float
    largest_symbol: str | None
    second: float
    symbol: str | None
    at_symbol: float

    def __init__(
        self,
        largest: float,
        largest_symbol: str | None,
        second: float,
        symbol: str | None = None,
        at_symbol: float = 0.0,
    ) -> None:
        self.largest = largest
        self.largest_symbol = largest_symbol
        self.second = second
        self.symbol = symbol
        self.at_symbol = at_symbol

    def _values(self) -> tuple[object, ...]:
        return (self.largest, self.largest_symbol, self.second, self.symbol, self.at_symbol)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NotionalSummary):
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        return (
            f"NotionalSummary(largest={self.largest!r}, largest_symbol={self.largest_symbol!r}"
            f", second={self.second!r}, symbol={self.symbol!r}, at_symbol={self.at_symbol!r})"
        )

    def fold(self, symbol: str, notional: float) -> None:
        """Meet one more symbol's notional (quote): the fold of ``max`` from 0.0, the two
        largest kept (a pre-trade summary being built)."""
        if notional > self.largest:
            self.second = self.largest
            self.largest = notional
            self.largest_symbol = symbol
        elif notional > self.second:
            self.second = notional

    def at(self, symbol: str | None) -> float:
        """The notional at ``symbol`` (quote), the largest when None.

        Raises:
            LookupError: ``symbol`` is not the one this summary holds.
        """
        if symbol is None:
            return self.largest
        if symbol != self.symbol:
            raise LookupError(f"a compact check holds no position notional at {symbol}")
        return self.at_symbol

    def after(self, symbol: str, notional: float, kept: bool) -> NotionalSummary:
        """The summary once ``symbol``'s notional is replaced by ``notional`` (``kept``) or
        the symbol is dropped (not ``kept``: flat and no reservation left), held at
        ``symbol``. The largest of the others is ``second`` when ``symbol`` was the largest,
        else ``largest``; the fold then meets ``notional`` last (its position in the dict
        does not change a fold of ``max``).

        Raises:
            LookupError: this summary is itself post-trade (it holds a symbol): it no longer
                knows which symbol its largest is.
        """
        if self.symbol is not None:
            raise LookupError("a post-trade notional summary cannot be moved again")
        others = self.second if symbol == self.largest_symbol else self.largest
        if not kept:
            return NotionalSummary(others, None, 0.0, symbol, 0.0)
        if notional > others:
            return NotionalSummary(notional, symbol, others, symbol, notional)
        return NotionalSummary(others, None, 0.0, symbol, notional)
