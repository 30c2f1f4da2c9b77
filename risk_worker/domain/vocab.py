"""Every enum member of :mod:`risk_worker.domain.types` as a module constant, for the compiled core.

The enums stay interpreted (:data:`risk_worker._core.INTERPRETED`), and on Python 3.11 reading a
member through its class (``Side.BUY``) runs ``EnumType.__getattr__``'s slot: about 150 ns, a
few hundred instructions, each time. A ``Final`` constant of a compiled module is a C static:
compiled code reads ``SIDE_BUY`` in a few instructions. The compiled domain modules read members
from here (``tests/unit/test_core.py`` checks that none reads one through its class); the
objects are the members themselves, so ``is`` and ``==`` hold as before.

Names: the enum's name in upper snake case, then the member's (``DenyReason.NO_MARKET_PRICE`` →
``DENY_REASON_NO_MARKET_PRICE``).
"""

from __future__ import annotations

from typing import Final

from risk_worker.domain.types import (
    ApplyResult,
    DenyReason,
    Metric,
    Operator,
    OrderType,
    PolicyType,
    RiskLevel,
    Scope,
    Side,
    StateSource,
    TickResult,
    TradingState,
)

SIDE_BUY: Final = Side.BUY
SIDE_SELL: Final = Side.SELL

ORDER_TYPE_LIMIT: Final = OrderType.LIMIT
ORDER_TYPE_MARKET: Final = OrderType.MARKET

TRADING_STATE_ACTIVE: Final = TradingState.ACTIVE
TRADING_STATE_REDUCING: Final = TradingState.REDUCING
TRADING_STATE_HALTED: Final = TradingState.HALTED

STATE_SOURCE_OPERATOR: Final = StateSource.OPERATOR
STATE_SOURCE_POLICY: Final = StateSource.POLICY
STATE_SOURCE_CIRCUIT_BREAKER: Final = StateSource.CIRCUIT_BREAKER

POLICY_TYPE_HARD: Final = PolicyType.HARD
POLICY_TYPE_SOFT: Final = PolicyType.SOFT
POLICY_TYPE_EMERGENCY: Final = PolicyType.EMERGENCY

OPERATOR_LT: Final = Operator.LT
OPERATOR_LTE: Final = Operator.LTE
OPERATOR_GT: Final = Operator.GT
OPERATOR_GTE: Final = Operator.GTE

SCOPE_ACCOUNT: Final = Scope.ACCOUNT
SCOPE_SYMBOL: Final = Scope.SYMBOL
SCOPE_STRATEGY: Final = Scope.STRATEGY

METRIC_LEVERAGE: Final = Metric.LEVERAGE
METRIC_MARGIN_RATIO: Final = Metric.MARGIN_RATIO
METRIC_DRAWDOWN_DAILY: Final = Metric.DRAWDOWN_DAILY
METRIC_DRAWDOWN_MAX: Final = Metric.DRAWDOWN_MAX
METRIC_DRAWDOWN_WINDOW: Final = Metric.DRAWDOWN_WINDOW
METRIC_DAILY_PNL: Final = Metric.DAILY_PNL
METRIC_GROSS_EXPOSURE: Final = Metric.GROSS_EXPOSURE
METRIC_NET_EXPOSURE: Final = Metric.NET_EXPOSURE
METRIC_CONCENTRATION: Final = Metric.CONCENTRATION
METRIC_POSITION_NOTIONAL: Final = Metric.POSITION_NOTIONAL
METRIC_ORDER_NOTIONAL: Final = Metric.ORDER_NOTIONAL
METRIC_ORDER_QUANTITY: Final = Metric.ORDER_QUANTITY
METRIC_OPEN_POSITIONS: Final = Metric.OPEN_POSITIONS
METRIC_ORDER_EQUITY_FRACTION: Final = Metric.ORDER_EQUITY_FRACTION
METRIC_PRICE_DEVIATION: Final = Metric.PRICE_DEVIATION
METRIC_ORDER_RATE: Final = Metric.ORDER_RATE
METRIC_OPEN_ORDERS: Final = Metric.OPEN_ORDERS
METRIC_VAR_95: Final = Metric.VAR_95
METRIC_VAR_99: Final = Metric.VAR_99
METRIC_ES_97_5: Final = Metric.ES_97_5
METRIC_VAR_99_FRACTION: Final = Metric.VAR_99_FRACTION

RISK_LEVEL_LOW: Final = RiskLevel.LOW
RISK_LEVEL_MEDIUM: Final = RiskLevel.MEDIUM
RISK_LEVEL_HIGH: Final = RiskLevel.HIGH
RISK_LEVEL_BREACHED: Final = RiskLevel.BREACHED

DENY_REASON_INVALID_REQUEST: Final = DenyReason.INVALID_REQUEST
DENY_REASON_BOOK_REPLAYING: Final = DenyReason.BOOK_REPLAYING
DENY_REASON_TRADING_STATE_UNKNOWN: Final = DenyReason.TRADING_STATE_UNKNOWN
DENY_REASON_EMERGENCY_STOP_ACTIVE: Final = DenyReason.EMERGENCY_STOP_ACTIVE
DENY_REASON_REDUCING_ONLY: Final = DenyReason.REDUCING_ONLY
DENY_REASON_UNKNOWN_ACCOUNT: Final = DenyReason.UNKNOWN_ACCOUNT
DENY_REASON_REDUCE_ONLY_WOULD_INCREASE: Final = DenyReason.REDUCE_ONLY_WOULD_INCREASE
DENY_REASON_RESTRICTED_SYMBOL: Final = DenyReason.RESTRICTED_SYMBOL
DENY_REASON_NO_MARKET_PRICE: Final = DenyReason.NO_MARKET_PRICE
DENY_REASON_POLICIES_UNAVAILABLE: Final = DenyReason.POLICIES_UNAVAILABLE
DENY_REASON_RATE_LIMITED: Final = DenyReason.RATE_LIMITED
DENY_REASON_DUPLICATE_ORDER_ID: Final = DenyReason.DUPLICATE_ORDER_ID
DENY_REASON_PRICE_OUT_OF_COLLAR: Final = DenyReason.PRICE_OUT_OF_COLLAR
DENY_REASON_ORDER_TOO_LARGE: Final = DenyReason.ORDER_TOO_LARGE
DENY_REASON_TOO_MANY_OPEN_ORDERS: Final = DenyReason.TOO_MANY_OPEN_ORDERS
DENY_REASON_INSUFFICIENT_MARGIN: Final = DenyReason.INSUFFICIENT_MARGIN
DENY_REASON_INSUFFICIENT_HISTORY: Final = DenyReason.INSUFFICIENT_HISTORY
DENY_REASON_POLICY_VIOLATION: Final = DenyReason.POLICY_VIOLATION
DENY_REASON_BATCH_DENIED: Final = DenyReason.BATCH_DENIED
DENY_REASON_INTERNAL_ERROR: Final = DenyReason.INTERNAL_ERROR

APPLY_RESULT_APPLIED: Final = ApplyResult.APPLIED
APPLY_RESULT_STALE: Final = ApplyResult.STALE
APPLY_RESULT_DUPLICATE: Final = ApplyResult.DUPLICATE
APPLY_RESULT_STRATEGY_LIMIT: Final = ApplyResult.STRATEGY_LIMIT

TICK_RESULT_APPLIED: Final = TickResult.APPLIED
TICK_RESULT_CONFIRMED: Final = TickResult.CONFIRMED
TICK_RESULT_SUSPECT: Final = TickResult.SUSPECT
TICK_RESULT_SUSPECT_ALERT: Final = TickResult.SUSPECT_ALERT
TICK_RESULT_SYMBOL_LIMIT: Final = TickResult.SYMBOL_LIMIT
