"""Circuit breaker and alert de-duplication: small time-window rules for the monitor."""

from __future__ import annotations

from collections import deque


class CircuitBreaker:
    """Trips an account after ``threshold`` hard violations within ``window_ms``.

    The monitor records one hit per evaluation that finds a hard violation (pre-trade denials
    do not count, so a retrying client cannot halt an account). The hits of an account are
    cleared when it trips.
    """

    __slots__ = ("_hits", "threshold", "window_ms")

    def __init__(self, threshold: int, window_ms: int) -> None:
        if threshold < 1 or window_ms <= 0:
            raise ValueError("breaker threshold must be ≥ 1 and window > 0")
        self.threshold = threshold
        self.window_ms = window_ms
        self._hits: dict[str, deque[int]] = {}

    def record(self, account_id: str, now_ms: int) -> bool:
        """Record a hard violation at ``now_ms``; True when this hit trips the breaker."""
        hits = self._hits.setdefault(account_id, deque())
        hits.append(now_ms)
        oldest = now_ms - self.window_ms
        while hits and hits[0] <= oldest:
            hits.popleft()
        if len(hits) >= self.threshold:
            del self._hits[account_id]
            return True
        return False

    def count(self, account_id: str, now_ms: int) -> int:
        """Hits of the account within the window ending at ``now_ms``."""
        oldest = now_ms - self.window_ms
        return sum(1 for t in self._hits.get(account_id, ()) if t > oldest)


class AlertDeduper:
    """Lets the same (account, policy) alert through at most once per ``window_ms``."""

    __slots__ = ("_last", "window_ms")

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._last: dict[tuple[str, str], int] = {}

    def allow(self, account_id: str, policy_id: str, now_ms: int) -> bool:
        """True (and remembered) when no alert for this pair was let through in the window."""
        key = (account_id, policy_id)
        last = self._last.get(key)
        if last is not None and now_ms - last < self.window_ms:
            return False
        self._last[key] = now_ms
        return True

    def prune(self, now_ms: int) -> None:
        """Forget pairs whose window has passed (bounds memory)."""
        cutoff = now_ms - self.window_ms
        for key in [k for k, t in self._last.items() if t <= cutoff]:
            del self._last[key]
