"""Vocabulary shared by the decision core: sides, states, policy terms and reason codes."""

from __future__ import annotations

from enum import StrEnum

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_\-/=]{1,64}\Z"
"""Account ids, symbols and strategy ids: 1-64 characters of ``A-Z a-z 0-9 _ - / =``.

They become NATS subject tokens and KV keys, so dots, spaces and wildcards are refused.
"""

MS_PER_DAY = 86_400_000


class Side(StrEnum):
    """Order or fill side. BUY adds to the signed quantity, SELL subtracts."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    """LIMIT orders are valued at their price, MARKET orders at the current mark."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"


class TradingState(StrEnum):
    """Trading state of a scope (global, an account, a strategy or a symbol), the emergency stop.

    ACTIVE: orders flow. REDUCING: only orders that strictly reduce an existing position.
    HALTED: nothing. Vocabulary from NautilusTrader's ``TradingState``.
    """

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


STATE_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
"""Order of severity; the effective state of an account is the more severe of global/account."""


class StateSource(StrEnum):
    """Who set a trading state."""

    OPERATOR = "operator"
    POLICY = "policy"
    CIRCUIT_BREAKER = "circuit_breaker"


class PolicyType(StrEnum):
    """HARD denies, SOFT warns, EMERGENCY denies and halts the account (monitor)."""

    HARD = "hard"
    SOFT = "soft"
    EMERGENCY = "emergency"


class Operator(StrEnum):
    """A policy HOLDS while ``value <operator> threshold`` is true; it is VIOLATED otherwise."""

    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"


class Scope(StrEnum):
    """What a policy applies to; ``scope_id`` None means every account/symbol/strategy."""

    ACCOUNT = "account"
    SYMBOL = "symbol"
    STRATEGY = "strategy"


class Metric(StrEnum):
    """Metrics a policy can limit (units in :class:`~risk_worker.domain.metrics.AccountMetrics`)."""

    LEVERAGE = "leverage"
    MARGIN_RATIO = "margin_ratio"
    DRAWDOWN_DAILY = "drawdown_daily"
    DRAWDOWN_MAX = "drawdown_max"
    DRAWDOWN_WINDOW = "drawdown_window"
    DAILY_PNL = "daily_pnl"
    GROSS_EXPOSURE = "gross_exposure"
    NET_EXPOSURE = "net_exposure"
    CONCENTRATION = "concentration"
    POSITION_NOTIONAL = "position_notional"
    ORDER_NOTIONAL = "order_notional"
    ORDER_QUANTITY = "order_quantity"
    OPEN_POSITIONS = "open_positions"
    # order-level controls (:mod:`risk_worker.domain.controls`), checked before the margin
    ORDER_EQUITY_FRACTION = "order_equity_fraction"
    PRICE_DEVIATION = "price_deviation"
    ORDER_RATE = "order_rate"
    OPEN_ORDERS = "open_orders"
    # historical VaR and expected shortfall (:mod:`risk_worker.domain.var`)
    VAR_95 = "var_95"
    VAR_99 = "var_99"
    ES_97_5 = "es_97_5"
    VAR_99_FRACTION = "var_99_fraction"


class RiskLevel(StrEnum):
    """BREACHED when denied by a policy or a stop; otherwise by the highest limit utilization."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    BREACHED = "BREACHED"


class DenyReason(StrEnum):
    """``rejection_reason`` codes of a denied check, in the order the check tests them."""

    INVALID_REQUEST = "invalid_request"
    BOOK_REPLAYING = "book_replaying"
    TRADING_STATE_UNKNOWN = "trading_state_unknown"
    EMERGENCY_STOP_ACTIVE = "emergency_stop_active"
    REDUCING_ONLY = "reducing_only"
    UNKNOWN_ACCOUNT = "unknown_account"
    REDUCE_ONLY_WOULD_INCREASE = "reduce_only_would_increase"
    RESTRICTED_SYMBOL = "restricted_symbol"
    NO_MARKET_PRICE = "no_market_price"
    POLICIES_UNAVAILABLE = "policies_unavailable"
    # order-level controls (:mod:`risk_worker.domain.controls`)
    RATE_LIMITED = "rate_limited"
    DUPLICATE_ORDER_ID = "duplicate_order_id"
    PRICE_OUT_OF_COLLAR = "price_out_of_collar"
    ORDER_TOO_LARGE = "order_too_large"
    TOO_MANY_OPEN_ORDERS = "too_many_open_orders"
    INSUFFICIENT_MARGIN = "insufficient_margin"
    INSUFFICIENT_HISTORY = "insufficient_history"
    POLICY_VIOLATION = "policy_violation"
    BATCH_DENIED = "batch_denied"
    INTERNAL_ERROR = "internal_error"


class ApplyResult(StrEnum):
    """What the book did with an event: applied, or ignored and why."""

    APPLIED = "applied"
    STALE = "stale"
    DUPLICATE = "duplicate"
    STRATEGY_LIMIT = "strategy_limit"
    """The account already holds ``STRATEGIES_MAX`` strategy books: the event's strategy part
    was refused (a fill's account part is applied)."""


def utc_day(timestamp_ms: int) -> int:
    """Trading day of a timestamp: whole days since the epoch, the day changing at 00:00 UTC."""
    return timestamp_ms // MS_PER_DAY


class TickResult(StrEnum):
    """What the mark table did with one tick."""

    APPLIED = "applied"
    """The tick is the symbol's mark now."""
    CONFIRMED = "confirmed"
    """A suspect level was confirmed: the tick is the symbol's mark now."""
    SUSPECT = "suspect"
    """Held, not applied: too far from the fresh mark, not (yet) confirmed."""
    SUSPECT_ALERT = "suspect_alert"
    """As SUSPECT, and the first suspect of the symbol within the alert window: alert it."""
    SYMBOL_LIMIT = "symbol_limit"
    """Refused: a new symbol while the table already holds ``max_symbols``."""
