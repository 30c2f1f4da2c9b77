"""An order to check and the decision on it: the check's input and output, plain values.

Money in quote currency, quantities in base units, timestamps in ms since the Unix epoch.
"""

from __future__ import annotations

import msgspec

from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.policies import Evaluation
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.types import DenyReason, OrderType, RiskLevel, Side, TradingState


class Order(msgspec.Struct, frozen=True, gc=False):
    """A validated order to check.

    quantity > 0 in base units; price quote per base unit, None for a market order;
    timestamp ms since epoch (the client's).
    """

    order_id: str
    account_id: str
    symbol: str
    side: Side
    quantity: float
    price: float | None
    order_type: OrderType
    strategy_id: str | None = None
    reduce_only: bool = False
    dry_run: bool = False
    timestamp: int = 0

    @property
    def signed_quantity(self) -> float:
        """BUY positive, SELL negative (base units)."""
        return self.quantity if self.side is Side.BUY else -self.quantity


class Decision(msgspec.Struct, gc=False):
    """Outcome of a check.

    ``metrics`` are the post-trade metrics (None when no simulation ran); ``utilization`` maps
    policy name → fraction of its limit used post-trade; ``reservation`` is what an approved,
    non-dry-run order reserved (other instances are told about it); ``duplicate``: an
    idempotent retry of a live order, approved again without a second reservation.
    """

    approved: bool
    reason: DenyReason | None
    message: str
    risk_level: RiskLevel
    trading_state: TradingState = TradingState.ACTIVE
    violations: list[Evaluation] = msgspec.field(default_factory=list)
    warnings: list[Evaluation] = msgspec.field(default_factory=list)
    metrics: AccountMetrics | None = None
    utilization: dict[str, float] = msgspec.field(default_factory=dict)
    reservation: PendingOrder | None = None
    duplicate: bool = False


def deny(
    reason: DenyReason,
    message: str,
    level: RiskLevel = RiskLevel.HIGH,
    state: TradingState = TradingState.ACTIVE,
) -> Decision:
    """A denial without simulation. Risk level HIGH: the worker cannot vouch for the order."""
    return Decision(False, reason, message, level, state)


def level_from_utilization(utilization: dict[str, float]) -> RiskLevel:
    """≥ 0.8 HIGH, ≥ 0.5 MEDIUM, else LOW, by the highest utilization."""
    top = max(utilization.values()) if utilization else 0.0
    if top >= 0.8:
        return RiskLevel.HIGH
    return RiskLevel.MEDIUM if top >= 0.5 else RiskLevel.LOW
