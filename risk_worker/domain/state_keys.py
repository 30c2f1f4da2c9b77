"""Trading-state keys and values: the KV key of each scope, parsing a key back, the stored value.

Keys (subjects.md §7):

- ``trading_state.global``: the operators' stop of every account;
- ``trading_state.account.<account_id>``: the operators' stop of one account;
- ``trading_state.auto.<account_id>``: the workers' automatic trip of one account (the
  workers' credential may write only ``trading_state.auto.>``, so a worker can never undo an
  operator);
- ``trading_state.auto.<account_id>.strategy.<strategy_id>``: the workers' automatic trip of
  one strategy of one account (orders of that account that name the strategy);
- ``trading_state.strategy.<strategy_id>``: the operators' stop of one strategy (orders that
  name it in ``strategy_id``, every account);
- ``trading_state.symbol.<symbol>``: the operators' stop of one symbol, for every account;
- any other ``trading_state.*`` key is unknown (written by a newer version or by hand, or an
  id with a dot, which no identifier has): a restrictive value there applies to every account
  (fail closed: the worker cannot know its scope).
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from risk_worker.domain.types import STATE_SEVERITY, StateSource, TradingState

STATE_KEY_PREFIX = "trading_state."
GLOBAL_KEY = "trading_state.global"
ACCOUNT_KEY_PREFIX = "trading_state.account."
AUTO_KEY_PREFIX = "trading_state.auto."
STRATEGY_KEY_PREFIX = "trading_state.strategy."
SYMBOL_KEY_PREFIX = "trading_state.symbol."
AUTO_STRATEGY_INFIX = ".strategy."

GLOBAL = "global"
ACCOUNT = "account"
AUTO = "auto"
AUTO_STRATEGY = "auto_strategy"
STRATEGY = "strategy"
SYMBOL = "symbol"
UNKNOWN = "unknown"

WIRE_SCOPE = {
    GLOBAL: GLOBAL,
    UNKNOWN: GLOBAL,
    ACCOUNT: ACCOUNT,
    AUTO: ACCOUNT,
    AUTO_STRATEGY: STRATEGY,
    STRATEGY: STRATEGY,
    SYMBOL: SYMBOL,
}
"""The scope of a key's kind as messages and records name it (``global``, ``account``,
``strategy``, ``symbol``): an automatic trip of an account is account-scoped, one of a strategy
of an account strategy-scoped (with the account id set too), an unknown key acts globally."""

_SCOPED_PREFIXES = (
    (ACCOUNT_KEY_PREFIX, ACCOUNT),
    (STRATEGY_KEY_PREFIX, STRATEGY),
    (SYMBOL_KEY_PREFIX, SYMBOL),
)


class StateValue(msgspec.Struct, frozen=True):
    """The value stored under a trading-state key.

    Attributes:
        state: ACTIVE, REDUCING or HALTED.
        reason: why (free text).
        updated_by: operator name or worker id.
        updated_at: ms since epoch (the writer's clock).
        source: operator, policy or circuit_breaker.
    """

    state: TradingState
    reason: str = ""
    updated_by: str = ""
    updated_at: int = 0
    source: StateSource = StateSource.OPERATOR


class Effective(NamedTuple):
    """An account's (or an order's) effective state, the scope that imposes it and its value.

    ``scope`` is ``global``, ``account`` (an operator's stop), ``account (automatic)``,
    ``strategy <id>``, ``strategy <id> of account <id> (automatic)`` or ``symbol <symbol>``.
    """

    state: TradingState
    scope: str
    value: StateValue | None


class StateKey(NamedTuple):
    """A parsed trading-state key: its kind and the ids it names (None where it names none).

    ``kind`` is one of ``global``, ``account``, ``auto``, ``auto_strategy``, ``strategy``,
    ``symbol``, ``unknown``; ``scope`` is the kind as messages name it (:data:`WIRE_SCOPE`).
    """

    kind: str
    account_id: str | None = None
    strategy_id: str | None = None
    symbol: str | None = None

    @property
    def scope(self) -> str:
        """``global``, ``account``, ``strategy`` or ``symbol``."""
        return WIRE_SCOPE[self.kind]


def account_key(account_id: str) -> str:
    """KV key of the operators' trading state of an account."""
    return ACCOUNT_KEY_PREFIX + account_id


def auto_key(account_id: str) -> str:
    """KV key of the workers' automatic trip of an account."""
    return AUTO_KEY_PREFIX + account_id


def auto_strategy_key(account_id: str, strategy_id: str) -> str:
    """KV key of the workers' automatic trip of one strategy of one account
    (``trading_state.auto.<account_id>.strategy.<strategy_id>``)."""
    return AUTO_KEY_PREFIX + account_id + AUTO_STRATEGY_INFIX + strategy_id


def strategy_key(strategy_id: str) -> str:
    """KV key of the operators' trading state of a strategy."""
    return STRATEGY_KEY_PREFIX + strategy_id


def symbol_key(symbol: str) -> str:
    """KV key of the operators' trading state of a symbol."""
    return SYMBOL_KEY_PREFIX + symbol


_UNKNOWN = StateKey(UNKNOWN)


def parse_state_key(key: str) -> StateKey | None:
    """The kind and ids of a trading-state key; None for any other key of the bucket.

    An id is one non-empty token (identifiers have no dots). A ``trading_state.*`` key of any
    other shape — an empty or dotted id (``trading_state.account.a.b``), an ``auto.`` key with
    a remainder other than ``<account>.strategy.<strategy>`` — is ``unknown``: it acts on
    every account (fail closed), never on an account or strategy no order names.
    """
    if not key.startswith(STATE_KEY_PREFIX):
        return None
    if key == GLOBAL_KEY:
        return StateKey(GLOBAL)
    if key.startswith(AUTO_KEY_PREFIX):
        parts = key[len(AUTO_KEY_PREFIX) :].split(".")
        if len(parts) == 1 and parts[0]:
            return StateKey(AUTO, parts[0])
        if len(parts) == 3 and parts[0] and parts[1] == "strategy" and parts[2]:
            return StateKey(AUTO_STRATEGY, parts[0], parts[2])
        return _UNKNOWN
    for prefix, kind in _SCOPED_PREFIXES:
        if key.startswith(prefix):
            ident = key[len(prefix) :]
            if not ident or "." in ident:
                return _UNKNOWN
            if kind == ACCOUNT:
                return StateKey(ACCOUNT, ident)
            if kind == STRATEGY:
                return StateKey(STRATEGY, strategy_id=ident)
            return StateKey(SYMBOL, symbol=ident)
    return _UNKNOWN


def scope_of_key(key: str) -> tuple[str, str | None] | None:
    """The kind of a trading-state key and its first id; None for any other key of the bucket
    (:func:`parse_state_key` has every id).

    Returns:
        ("global", None), ("account", id), ("auto", id), ("auto_strategy", account id),
        ("strategy", id), ("symbol", symbol), or ("unknown", None) for another
        ``trading_state.*`` key.
    """
    parsed = parse_state_key(key)
    if parsed is None:
        return None
    return (parsed.kind, parsed.account_id or parsed.strategy_id or parsed.symbol)


def more_severe(a: StateValue | None, b: StateValue | None) -> bool:
    """Whether ``a`` restricts more than ``b`` (None and ACTIVE restrict nothing)."""
    sa = 0 if a is None else STATE_SEVERITY[a.state]
    sb = 0 if b is None else STATE_SEVERITY[b.state]
    return sa > sb
