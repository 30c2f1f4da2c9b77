"""An engine, controls and orders for the tests of the order-level controls."""

from __future__ import annotations

from risk_worker.domain.book_events import PnlSnapshot, PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Decision, Order
from risk_worker.domain.policies import Policy, default_policies
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.types import (
    Metric,
    Operator,
    OrderType,
    PolicyType,
    Scope,
    Side,
)

ACCT = "a1"
BTC = "BTCUSDT"
ETH = "ETHUSDT"
NOW = 1_700_000_000_000


def control(
    metric: Metric,
    threshold: float,
    scope: Scope = Scope.ACCOUNT,
    scope_id: str | None = None,
    kind: PolicyType = PolicyType.HARD,
    name: str | None = None,
) -> Policy:
    name = name or f"{metric} {scope} {scope_id}"
    return Policy(f"id-{name}", name, kind, metric, Operator.LTE, threshold, scope, scope_id)


def make_engine(
    policies: list[Policy] | None = None,
    balance: float = 1_000_000.0,
    position: float | None = None,
    marks: dict[str, float] | None = None,
    accounts: tuple[str, ...] = (ACCT,),
) -> RiskEngine:
    engine = RiskEngine(RiskConfig())
    engine.load_policies(default_policies() if policies is None else policies)
    for account in accounts:
        engine.apply_pnl(PnlSnapshot(account, balance, None, None, 1))
    if position is not None:
        engine.apply_position(PositionSnapshot(ACCT, BTC, position, 1_000.0, 1))
    for symbol, price in ({BTC: 1_000.0, ETH: 100.0} if marks is None else marks).items():
        engine.set_mark(symbol, price, NOW, NOW)
    return engine


def order(
    side: Side,
    quantity: float,
    price: float | None = 1_000.0,
    order_id: str = "o1",
    *,
    symbol: str = BTC,
    account: str = ACCT,
    strategy: str | None = None,
    dry_run: bool = False,
) -> Order:
    kind = OrderType.MARKET if price is None else OrderType.LIMIT
    return Order(order_id, account, symbol, side, quantity, price, kind, strategy, dry_run=dry_run)


def check(engine: RiskEngine, o: Order, now: int = NOW) -> Decision:
    return engine.check(o, now, True)
