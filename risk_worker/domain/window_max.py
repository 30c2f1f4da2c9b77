"""A bounded sliding-window maximum of equity observations (``drawdown_window``'s peak).

A monotonic deque: observations in time order with strictly decreasing equities, so the front
is the maximum of the window, found in O(1), each observation pushed and popped at most once
(O(1) amortized). Bounded: a lower equity observed within the same second as the back entry is
not appended, the back entry's time moves to now instead, so the deque holds at most one entry
per second of the window (301 for 300 s). That keeps the higher equity a little longer, never
shorter: the window peak errs on the high side, the drawdown on the conservative one.
"""

from __future__ import annotations

from collections import deque

BUCKET_MS = 1_000
"""Observations closer together than this (ms) share one deque entry (see the module doc)."""


class EquityWindow:
    """The highest equity observed within a sliding time window (quote currency).

    Args:
        window_ms: the window's length (ms), > 0.

    Raises:
        ValueError: ``window_ms`` is not positive.
    """

    __slots__ = ("_entries", "window_ms")

    def __init__(self, window_ms: int) -> None:
        if window_ms <= 0:
            raise ValueError("the drawdown window must be positive")
        self.window_ms = window_ms
        self._entries: deque[list[float]] = deque()
        """[ms since epoch, equity] pairs, times ascending, equities strictly descending."""

    def __len__(self) -> int:
        return len(self._entries)

    def observe(self, now_ms: int, equity: float) -> None:
        """Record the equity ``equity`` (quote) seen at ``now_ms`` (ms since epoch).

        Observations must come in time order (one clock); an earlier one is taken as now.
        """
        entries = self._entries
        self._expire(now_ms)
        while entries and entries[-1][1] <= equity:
            entries.pop()
        if entries:
            last = entries[-1]
            if now_ms - last[0] < BUCKET_MS:  # same bucket, lower: keep the higher one longer
                last[0] = max(last[0], now_ms)
                return
        entries.append([now_ms, equity])

    def peak(self, now_ms: int) -> float | None:
        """The highest equity observed in ``(now_ms − window_ms, now_ms]`` (quote); None when
        nothing was observed in the window."""
        self._expire(now_ms)
        return self._entries[0][1] if self._entries else None

    def _expire(self, now_ms: int) -> None:
        entries = self._entries
        oldest = now_ms - self.window_ms
        while entries and entries[0][0] <= oldest:
            entries.popleft()
