"""An order to check and the decision on it: the check's input and output, plain values.

Money in quote currency, quantities in base units, timestamps in ms since the Unix epoch.

Both classes are plain ones (``__slots__``), not msgspec Structs, so this module is compiled
with the domain (:mod:`risk_worker._core`) and they are native classes: a check reads the
order's fields many times and builds one decision, which a native class does at fixed offsets
(a Struct field is a descriptor looked up by name). They keep the Structs' constructors
(positional order, keywords, defaults; fresh containers per decision), their equality field by
field, ``Order``'s hash (it was frozen) and a repr of every field. Neither is encoded as such:
the wire has its own messages (:mod:`risk_worker.wire`).
"""

from __future__ import annotations

from typing import Final

from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.policies import Evaluation
from risk_worker.domain.risk_metrics import AccountMetrics, fields_repr
from risk_worker.domain.types import DenyReason, OrderType, RiskLevel, Side, TradingState
from risk_worker.domain.vocab import (
    RISK_LEVEL_HIGH,
    RISK_LEVEL_LOW,
    RISK_LEVEL_MEDIUM,
    SIDE_BUY,
    TRADING_STATE_ACTIVE,
)

ORDER_FIELDS = (
    "order_id",
    "account_id",
    "symbol",
    "side",
    "quantity",
    "price",
    "order_type",
    "strategy_id",
    "reduce_only",
    "dry_run",
    "timestamp",
)
"""``Order``'s fields in constructor order."""
DECISION_FIELDS = (
    "approved",
    "reason",
    "message",
    "risk_level",
    "trading_state",
    "violations",
    "warnings",
    "metrics",
    "utilization",
    "reservation",
    "duplicate",
)
"""``Decision``'s fields in constructor order."""


class Order:
    """A validated order to check.

    quantity > 0 in base units; price quote per base unit, None for a market order;
    timestamp ms since epoch (the client's).

    Never changed once made, as the frozen Struct it was: the attributes are ``Final`` (mypy
    refuses an assignment; compiled, they are read-only). Compares and hashes by value.
    """

    __slots__ = ORDER_FIELDS

    order_id: Final[str]
    account_id: Final[str]
    symbol: Final[str]
    side: Final[Side]
    quantity: Final[float]
    price: Final[float | None]
    order_type: Final[OrderType]
    strategy_id: Final[str | None]
    reduce_only: Final[bool]
    dry_run: Final[bool]
    timestamp: Final[int]

    def __init__(
        self,
        order_id: str,
        account_id: str,
        symbol: str,
        side: Side,
        quantity: float,
        price: float | None,
        order_type: OrderType,
        strategy_id: str | None = None,
        reduce_only: bool = False,
        dry_run: bool = False,
        timestamp: int = 0,
    ) -> None:
        self.order_id = order_id
        self.account_id = account_id
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.price = price
        self.order_type = order_type
        self.strategy_id = strategy_id
        self.reduce_only = reduce_only
        self.dry_run = dry_run
        self.timestamp = timestamp

    def _values(self) -> tuple[object, ...]:
        return (
            self.order_id,
            self.account_id,
            self.symbol,
            self.side,
            self.quantity,
            self.price,
            self.order_type,
            self.strategy_id,
            self.reduce_only,
            self.dry_run,
            self.timestamp,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Order):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return fields_repr(self, ORDER_FIELDS)

    @property
    def signed_quantity(self) -> float:
        """BUY positive, SELL negative (base units)."""
        return self.quantity if self.side is SIDE_BUY else -self.quantity


class Decision:  # noqa: PLW1641 (unhashable on purpose: see the last paragraph)
    """Outcome of a check.

    ``metrics`` are the post-trade metrics (None when no simulation ran); ``utilization`` maps
    policy name → fraction of its limit used post-trade; ``reservation`` is what an approved,
    non-dry-run order reserved (other instances are told about it); ``duplicate``: an
    idempotent retry of a live order, approved again without a second reservation.
    ``violations``, ``warnings`` and ``utilization`` are new empty containers by default.

    Compares field by field. Not hashable, as the Struct was not (it was not frozen): a class
    defining ``__eq__`` without ``__hash__`` gets none, compiled or not.
    """

    __slots__ = DECISION_FIELDS

    approved: bool
    reason: DenyReason | None
    message: str
    risk_level: RiskLevel
    trading_state: TradingState
    violations: list[Evaluation]
    warnings: list[Evaluation]
    metrics: AccountMetrics | None
    utilization: dict[str, float]
    reservation: PendingOrder | None
    duplicate: bool

    def __init__(
        self,
        approved: bool,
        reason: DenyReason | None,
        message: str,
        risk_level: RiskLevel,
        trading_state: TradingState = TRADING_STATE_ACTIVE,
        violations: list[Evaluation] | None = None,
        warnings: list[Evaluation] | None = None,
        metrics: AccountMetrics | None = None,
        utilization: dict[str, float] | None = None,
        reservation: PendingOrder | None = None,
        duplicate: bool = False,
    ) -> None:
        self.approved = approved
        self.reason = reason
        self.message = message
        self.risk_level = risk_level
        self.trading_state = trading_state
        self.violations = [] if violations is None else violations
        self.warnings = [] if warnings is None else warnings
        self.metrics = metrics
        self.utilization = {} if utilization is None else utilization
        self.reservation = reservation
        self.duplicate = duplicate

    def _values(self) -> tuple[object, ...]:
        return (
            self.approved,
            self.reason,
            self.message,
            self.risk_level,
            self.trading_state,
            self.violations,
            self.warnings,
            self.metrics,
            self.utilization,
            self.reservation,
            self.duplicate,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        return fields_repr(self, DECISION_FIELDS)


def deny(
    reason: DenyReason,
    message: str,
    level: RiskLevel = RISK_LEVEL_HIGH,
    state: TradingState = TRADING_STATE_ACTIVE,
) -> Decision:
    """A denial without simulation. Risk level HIGH: the worker cannot vouch for the order."""
    return Decision(False, reason, message, level, state)


def level_from_top(top: float) -> RiskLevel:
    """≥ 0.8 HIGH, ≥ 0.5 MEDIUM, else LOW, by ``top``: the highest limit utilization
    (fraction)."""
    if top >= 0.8:
        return RISK_LEVEL_HIGH
    return RISK_LEVEL_MEDIUM if top >= 0.5 else RISK_LEVEL_LOW


def highest(utilization: dict[str, float]) -> float:
    """The highest utilization (fraction): NaN, a figure that could not be computed, is
    skipped; 0.0 when there is none."""
    top = 0.0
    for used in utilization.values():
        top = max(top, used)
    return top


def level_from_utilization(utilization: dict[str, float]) -> RiskLevel:
    """:func:`level_from_top` of the :func:`highest` utilization."""
    return level_from_top(highest(utilization))
