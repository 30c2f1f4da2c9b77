"""A small engine and orders for the tests of the pre-trade check (test_domain_decision*.py)."""

from __future__ import annotations

from risk_worker.domain.book_events import Fill, PnlSnapshot, PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Order
from risk_worker.domain.policies import ORDER_METRICS, Policy, default_policies
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.trading_state import StateValue
from risk_worker.domain.types import (
    Metric,
    Operator,
    OrderType,
    PolicyType,
    Side,
    TradingState,
)

ACCT = "a1"
BTC = "BTCUSDT"
NOW = 1_700_000_000_000
CONFIG = RiskConfig()  # margin 10 %, mark max age 30 s, pending TTL 60 s

ORDER_NOTIONAL_CAP = Policy(
    "id-cap", "Order Cap", PolicyType.HARD, Metric.ORDER_NOTIONAL, Operator.LTE, 1.0
)
GROSS_CAP = Policy(
    "id-gross", "Gross Cap", PolicyType.HARD, Metric.GROSS_EXPOSURE, Operator.LTE, 1.0
)
POST_TRADE = [p for p in default_policies() if p.metric not in ORDER_METRICS]
"""The built-in set without its order-level controls (tests of the post-trade simulation)."""


def make_engine(
    balance: float | None = 10_000.0,
    position: tuple[float, float] | None = None,
    mark: float | None = None,
    mark_age_ms: int = 0,
    config: RiskConfig = CONFIG,
    policies: list[Policy] | None = None,
    load_policies: bool = True,
) -> RiskEngine:
    engine = RiskEngine(config)
    if load_policies:
        engine.load_policies(default_policies() if policies is None else policies)
    if balance is not None:
        engine.apply_pnl(PnlSnapshot(ACCT, balance, None, None, 1))
    if position is not None:
        engine.apply_position(PositionSnapshot(ACCT, BTC, position[0], position[1], 1))
    if mark is not None:
        engine.set_mark(BTC, mark, NOW - mark_age_ms, NOW - mark_age_ms)
    return engine


def order(
    side: Side,
    quantity: float,
    price: float | None = 1_000.0,
    order_id: str = "o1",
    *,
    reduce_only: bool = False,
    dry_run: bool = False,
) -> Order:
    order_type = OrderType.MARKET if price is None else OrderType.LIMIT
    return Order(
        order_id,
        ACCT,
        BTC,
        side,
        quantity,
        price,
        order_type,
        reduce_only=reduce_only,
        dry_run=dry_run,
        timestamp=NOW,
    )


def set_state(engine: RiskEngine, key: str, state: TradingState) -> None:
    engine.states.apply(key, StateValue(state, "test"), engine.states.revision(key) + 1)


def fill(order_id: str, side: Side, quantity: float, price: float, ts: int, fill_id: str) -> Fill:
    return Fill(fill_id, order_id, ACCT, BTC, side, quantity, price, 0.0, ts)
