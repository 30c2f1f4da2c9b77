"""What one bench run measures: the book, the load, the rounds and the tick ladder."""

from __future__ import annotations

from dataclasses import dataclass

TICK_RATES = (10_000, 25_000, 50_000, 100_000, 150_000, 200_000, 300_000, 400_000)
"""The default tick-ingestion ladder, ticks/s."""


@dataclass(frozen=True)
class BenchConfig:
    """Book size, load and rounds of one bench run (``requests`` set: a count per phase;
    ``var``: a VaR policy and a seeded history, see :mod:`risk_worker.bench.varseed`;
    ``instances``: worker processes per worker round, see :mod:`risk_worker.bench.fleet`)."""

    accounts: int = 1000
    positions: int = 20
    duration: float = 2.0
    requests: int | None = None
    inflight: tuple[int, ...] = (16, 64, 128)
    rounds: int = 3
    tick_rate: float = 5_000.0
    tick_rates: tuple[float, ...] = tuple(float(r) for r in TICK_RATES)
    tick_seconds: float = 3.0
    inprocess: bool = True
    var: bool = False
    instances: int = 1
