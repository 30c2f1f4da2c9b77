"""A bounded sliding-window maximum of equity observations (``drawdown_window``'s peak).

A monotonic deque: observations in time order with strictly decreasing equities, so the front
is the maximum of the window, found in O(1), each observation pushed and popped at most once
(O(1) amortized). Bounded: a lower equity observed within the same second as the back entry is
not appended, the back entry's time moves to now instead, so the deque holds at most one entry
per second of the window (301 for 300 s). That keeps the higher equity a little longer, never
shorter: the window peak errs on the high side, the drawdown on the conservative one.
"""

from __future__ import annotations

from typing import Final

BUCKET_MS: Final = 1_000
"""Observations closer together than this (ms) share one deque entry (see the module doc)."""


class EquityWindow:
    """The highest equity observed within a sliding time window (quote currency).

    The deque is two parallel lists (times, equities) and the index of its front, so the
    compiled core runs every step natively (a ``collections.deque`` is a Python object to it:
    each read a method call); the space before the front is reclaimed once it is half the lists.

    Args:
        window_ms: the window's length (ms), > 0.

    Raises:
        ValueError: ``window_ms`` is not positive.
    """

    __slots__ = ("_equities", "_front", "_times", "window_ms")

    def __init__(self, window_ms: int) -> None:
        if window_ms <= 0:
            raise ValueError("the drawdown window must be positive")
        self.window_ms = window_ms
        self._times: list[int] = []
        """ms since epoch of each entry from ``_front`` on, ascending."""
        self._equities: list[float] = []
        """Equity of each entry from ``_front`` on (quote), strictly descending."""
        self._front = 0

    def __len__(self) -> int:
        return len(self._times) - self._front

    def observe(self, now_ms: int, equity: float) -> None:
        """Record the equity ``equity`` (quote) seen at ``now_ms`` (ms since epoch).

        Observations must come in time order (one clock); an earlier one is taken as now.
        """
        self._expire(now_ms)
        times, equities = self._times, self._equities
        front = self._front
        while len(times) > front and equities[-1] <= equity:
            times.pop()
            equities.pop()
        if len(times) > front:
            last = times[-1]
            if now_ms - last < BUCKET_MS:  # same bucket, lower: keep the higher one longer
                if now_ms > last:
                    times[-1] = now_ms
                return
        times.append(now_ms)
        equities.append(equity)

    def peak(self, now_ms: int) -> float | None:
        """The highest equity observed in ``(now_ms − window_ms, now_ms]`` (quote); None when
        nothing was observed in the window."""
        self._expire(now_ms)
        front = self._front
        return self._equities[front] if len(self._equities) > front else None

    def _expire(self, now_ms: int) -> None:
        times = self._times
        front = self._front
        oldest = now_ms - self.window_ms
        end = len(times)
        while front < end and times[front] <= oldest:
            front += 1
        if front == end:  # empty: start the lists afresh
            if end:
                times.clear()
                self._equities.clear()
            front = 0
        elif front > 32 and 2 * front > end:  # reclaim the space before the front
            del times[:front]
            del self._equities[:front]
            front = 0
        self._front = front
