"""The mark table's gate: bounded in size, and a wild tick is held as *suspect* until confirmed.

One bad tick must neither halt an account (a mark 1e9 times too high, or too low, makes a
drawdown out of nothing) nor hide a real move for long. So, per symbol:

- no fresh mark (none, or received longer than the mark max age ago): the tick is applied;
- within ``max_jump`` (fraction) of the fresh mark: applied, and a pending suspect is cancelled
  (the market came back);
- further than ``max_jump`` from the fresh mark: held as a suspect level (not applied). Each
  following tick within ``max_jump`` of that level confirms it; at ``confirmations``
  confirmations in a row the tick is applied. A tick far from both the mark and the suspect
  level starts a new suspect level.

A suspect is never confirmed by time alone, but the held mark is not refreshed by suspect ticks:
once it is older than the mark max age it is stale (market orders are denied ``no_market_price``)
and the next tick is applied as the first of a fresh series. A new symbol beyond ``max_symbols``
is refused (its orders are then denied ``no_market_price``, as for any symbol without a mark).

Rule source: issue 10 (``RISK_TICK_MAX_JUMP``, ``RISK_TICK_CONFIRMATIONS``, ``RISK_MAX_SYMBOLS``).
"""

from __future__ import annotations

from typing import NamedTuple

from risk_worker.domain.mark import Mark
from risk_worker.domain.types import TickResult
from risk_worker.domain.vocab import (
    TICK_RESULT_APPLIED,
    TICK_RESULT_CONFIRMED,
    TICK_RESULT_SUSPECT,
    TICK_RESULT_SUSPECT_ALERT,
    TICK_RESULT_SYMBOL_LIMIT,
)


class HeldTick(NamedTuple):
    """A tick of a batch (:meth:`~risk_worker.domain.engine.RiskEngine.set_marks`) that was not
    simply applied: confirmed, held as suspect or refused."""

    symbol: str
    price: float
    """The tick's price (quote per base unit)."""
    result: TickResult
    """What the table did: CONFIRMED, SUSPECT, SUSPECT_ALERT or SYMBOL_LIMIT."""
    mark: float | None
    """The symbol's mark price just after the tick (quote per base unit), None without one."""


class _Suspect:
    """A pending suspect level (quote per base unit) and its confirmations so far (count)."""

    __slots__ = ("confirmations", "level")

    def __init__(self, level: float) -> None:
        self.level = level
        self.confirmations = 0


class MarkTable:
    """Applies ticks to a mark dict (the book's), through the suspect-tick filter.

    Args:
        marks: symbol → mark, the dict the book values positions with (written in place).
        max_jump: relative move |p − mark| / mark (fraction) beyond which a tick is suspect.
        confirmations: consecutive ticks near a suspect level that apply it (count ≥ 1).
        max_symbols: most symbols the table holds (count ≥ 1).
        mark_max_age_ms: a mark received longer ago than this is not fresh (ms).
        alert_window_ms: at most one suspect alert per symbol within this window (ms).

    Raises:
        ValueError: a parameter out of range.
    """

    __slots__ = (
        "_alerted",
        "_suspects",
        "alert_window_ms",
        "confirmations",
        "mark_max_age_ms",
        "marks",
        "max_jump",
        "max_symbols",
    )

    def __init__(
        self,
        marks: dict[str, Mark],
        *,
        max_jump: float = 0.25,
        confirmations: int = 3,
        max_symbols: int = 10_000,
        mark_max_age_ms: int = 30_000,
        alert_window_ms: int = 300_000,
    ) -> None:
        if not max_jump > 0 or confirmations < 1 or max_symbols < 1 or mark_max_age_ms <= 0:
            raise ValueError("max_jump > 0, confirmations ≥ 1, max_symbols ≥ 1, max age > 0")
        self.marks = marks
        self.max_jump = max_jump
        self.confirmations = confirmations
        self.max_symbols = max_symbols
        self.mark_max_age_ms = mark_max_age_ms
        self.alert_window_ms = alert_window_ms
        self._suspects: dict[str, _Suspect] = {}
        self._alerted: dict[str, int] = {}

    def offer(self, symbol: str, price: float, timestamp: int, now_ms: int) -> TickResult:
        """Apply or hold one tick (price already bounded by the wire layer, quote per base).

        Args:
            symbol: the subject's symbol token.
            price: last price or mid (quote per base unit), within the price bounds.
            timestamp: the source's timestamp (ms), informational.
            now_ms: the worker's receive time (ms since epoch): the mark's freshness.
        """
        marks = self.marks
        held = marks.get(symbol)
        if held is None:
            if len(marks) >= self.max_symbols:
                return TICK_RESULT_SYMBOL_LIMIT
        elif held.received_ms >= now_ms - self.mark_max_age_ms:
            reference = held.price
            if abs(price - reference) > self.max_jump * reference:
                return self._suspect(symbol, price, timestamp, now_ms)
        marks[symbol] = Mark(price, now_ms, timestamp)
        if self._suspects:  # nearly always empty: one cheap test on the hot path
            self._suspects.pop(symbol, None)
        return TICK_RESULT_APPLIED

    def holds_suspects(self) -> bool:
        """Whether any symbol has a pending suspect level (nearly never)."""
        return bool(self._suspects)

    def suspect_level(self, symbol: str) -> float | None:
        """The pending suspect level of ``symbol`` (quote per base), None when there is none."""
        suspect = self._suspects.get(symbol)
        return None if suspect is None else suspect.level

    def _suspect(self, symbol: str, price: float, timestamp: int, now_ms: int) -> TickResult:
        suspect = self._suspects.get(symbol)
        if suspect is not None and abs(price - suspect.level) <= self.max_jump * suspect.level:
            suspect.confirmations += 1
            if suspect.confirmations >= self.confirmations:
                del self._suspects[symbol]
                self.marks[symbol] = Mark(price, now_ms, timestamp)
                return TICK_RESULT_CONFIRMED
            return TICK_RESULT_SUSPECT
        self._suspects[symbol] = _Suspect(price)  # a new level: a first tick, 0 confirmations
        last = self._alerted.get(symbol)
        if last is not None and now_ms - last < self.alert_window_ms:
            return TICK_RESULT_SUSPECT
        self._alerted[symbol] = now_ms  # bounded: only symbols held in the table get here
        return TICK_RESULT_SUSPECT_ALERT
