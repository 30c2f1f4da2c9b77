"""EquityWindow against the deque it replaced (a monotonic deque of [ms, equity] pairs): the
same peak after every observation, on random sequences with repeats, bursts within a second,
gaps beyond the window and a clock that steps back."""

from __future__ import annotations

import random
from collections import deque

import pytest

from risk_worker.domain.window_max import BUCKET_MS, EquityWindow


class DequeWindow:
    """The former implementation, kept here as the reference."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.entries: deque[list[float]] = deque()

    def observe(self, now_ms: int, equity: float) -> None:
        entries = self.entries
        self._expire(now_ms)
        while entries and entries[-1][1] <= equity:
            entries.pop()
        if entries:
            last = entries[-1]
            if now_ms - last[0] < BUCKET_MS:
                last[0] = max(last[0], now_ms)
                return
        entries.append([now_ms, equity])

    def peak(self, now_ms: int) -> float | None:
        self._expire(now_ms)
        return self.entries[0][1] if self.entries else None

    def _expire(self, now_ms: int) -> None:
        oldest = now_ms - self.window_ms
        while self.entries and self.entries[0][0] <= oldest:
            self.entries.popleft()


@pytest.mark.parametrize("seed", range(40))
def test_window_when_random_observations_then_same_peaks_as_the_deque(seed: int) -> None:
    rng = random.Random(seed)
    window_ms = rng.choice([1_000, 5_000, 60_000, 300_000])
    fast, reference = EquityWindow(window_ms), DequeWindow(window_ms)
    now = 1_700_000_000_000
    equity = 100_000.0
    for _ in range(3_000):
        step = rng.random()
        if step < 0.5:
            now += rng.randrange(0, 400)  # bursts within a second
        elif step < 0.9:
            now += rng.randrange(400, 5_000)
        elif step < 0.97:
            now += rng.randrange(window_ms, 3 * window_ms)  # a gap: the window empties
        else:
            now -= rng.randrange(0, 2_000)  # the clock steps back
        equity = equity * (1.0 + rng.uniform(-0.01, 0.01)) if rng.random() < 0.9 else equity
        if rng.random() < 0.8:
            fast.observe(now, equity)
            reference.observe(now, equity)
        assert fast.peak(now) == reference.peak(now)
        assert len(fast) == len(reference.entries)
