"""Trading state (the emergency stop): a local copy of the KV bucket and the rules on it.

Keys (subjects.md §7):

- ``trading_state.global``: the operators' stop of every account;
- ``trading_state.account.<account_id>``: the operators' stop of one account;
- ``trading_state.auto.<account_id>``: the workers' automatic trip of one account (the only
  trading-state keys a worker credential may write, so a worker can never undo an operator);
- ``trading_state.strategy.<strategy_id>``: the operators' stop of one strategy (orders that
  name it in ``strategy_id``);
- ``trading_state.symbol.<symbol>``: the operators' stop of one symbol, for every account;
- any other ``trading_state.*`` key is unknown (written by a newer version or by hand): a
  restrictive value there applies to every account (fail closed: the worker cannot know its
  scope).

An absent key means ACTIVE. The effective state of an account is the most severe of the global
(and unknown) value, its operator value and its automatic value; an order's adds its strategy's
and its symbol's (issue 12). Updates carry the KV revision;
an update with a revision not newer than the one held for its key is ignored, so a late delivery
can never roll the copy back (a bucket recreated under the watcher is the watcher's business:
it calls :meth:`TradingStates.reset` and reads the bucket again).
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from risk_worker.domain.restricted import RestrictedList
from risk_worker.domain.types import STATE_SEVERITY, StateSource, TradingState

STATE_KEY_PREFIX = "trading_state."
GLOBAL_KEY = "trading_state.global"
ACCOUNT_KEY_PREFIX = "trading_state.account."
AUTO_KEY_PREFIX = "trading_state.auto."
STRATEGY_KEY_PREFIX = "trading_state.strategy."
SYMBOL_KEY_PREFIX = "trading_state.symbol."

GLOBAL = "global"
ACCOUNT = "account"
AUTO = "auto"
STRATEGY = "strategy"
SYMBOL = "symbol"
UNKNOWN = "unknown"

WIRE_SCOPE = {
    GLOBAL: GLOBAL,
    UNKNOWN: GLOBAL,
    ACCOUNT: ACCOUNT,
    AUTO: ACCOUNT,
    STRATEGY: STRATEGY,
    SYMBOL: SYMBOL,
}
"""The scope of a key's kind as messages and records name it (``global``, ``account``,
``strategy``, ``symbol``): an automatic trip is account-scoped, an unknown key acts globally."""

_SCOPED_PREFIXES = (
    (ACCOUNT_KEY_PREFIX, ACCOUNT),
    (AUTO_KEY_PREFIX, AUTO),
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
    """An account's effective state, the scope that imposes it and that scope's value.

    ``scope`` is ``global``, ``account`` (an operator's stop), ``account (automatic)``,
    ``strategy <id>`` or ``symbol <symbol>``.
    """

    state: TradingState
    scope: str
    value: StateValue | None


def account_key(account_id: str) -> str:
    """KV key of the operators' trading state of an account."""
    return ACCOUNT_KEY_PREFIX + account_id


def auto_key(account_id: str) -> str:
    """KV key of the workers' automatic trip of an account."""
    return AUTO_KEY_PREFIX + account_id


def strategy_key(strategy_id: str) -> str:
    """KV key of the operators' trading state of a strategy."""
    return STRATEGY_KEY_PREFIX + strategy_id


def symbol_key(symbol: str) -> str:
    """KV key of the operators' trading state of a symbol."""
    return SYMBOL_KEY_PREFIX + symbol


def scope_of_key(key: str) -> tuple[str, str | None] | None:
    """The scope of a trading-state key; None for any other key of the bucket.

    The scoped prefixes are tried before the fallback, so a strategy or symbol key never reads
    as unknown (which would act globally).

    Returns:
        ("global", None), ("account", id), ("auto", id), ("strategy", id), ("symbol", symbol),
        or ("unknown", None) for another ``trading_state.*`` key.
    """
    if not key.startswith(STATE_KEY_PREFIX):
        return None
    if key == GLOBAL_KEY:
        return (GLOBAL, None)
    for prefix, scope in _SCOPED_PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            return (scope, key[len(prefix) :])
    return (UNKNOWN, None)


def more_severe(a: StateValue | None, b: StateValue | None) -> bool:
    """Whether ``a`` restricts more than ``b`` (None and ACTIVE restrict nothing)."""
    sa = 0 if a is None else STATE_SEVERITY[a.state]
    sb = 0 if b is None else STATE_SEVERITY[b.state]
    return sa > sb


_ACTIVE = Effective(TradingState.ACTIVE, GLOBAL, None)
_SCOPE_TEXT = {ACCOUNT: "account", AUTO: "account (automatic)"}


class TradingStates:
    """The worker's copy of every trading state, by key, with the KV revision of each.

    ``restricted`` is the copy of the restricted list kept in the same bucket (reset with it).
    """

    __slots__ = (
        "_accounts",
        "_auto",
        "_cleared_at",
        "_global",
        "_global_effective",
        "_globals",
        "_operator",
        "_revisions",
        "_strategies",
        "_symbols",
        "restricted",
    )

    def __init__(self) -> None:
        self._revisions: dict[str, int] = {}
        self._globals: dict[str, StateValue] = {}  # global and unknown keys, restrictive only
        self._global: StateValue | None = None  # the most severe of _globals
        self._global_effective = _ACTIVE
        self._operator: dict[str, StateValue] = {}
        self._auto: dict[str, StateValue] = {}
        self._accounts: dict[str, Effective] = {}  # the more severe of _operator and _auto
        self._cleared_at: dict[str, int] = {}
        self._strategies: dict[str, Effective] = {}  # restrictive only
        self._symbols: dict[str, Effective] = {}  # restrictive only
        self.restricted = RestrictedList()

    def apply(self, key: str, value: StateValue | None, revision: int) -> bool:
        """Apply a KV entry (None for a delete or purge); False when ignored as not newer.

        Keys that are not trading-state keys are ignored (False).
        """
        scope = scope_of_key(key)
        if scope is None or revision <= self._revisions.get(key, 0):
            return False
        self._revisions[key] = revision
        self._set(key, scope, value)
        return True

    def set_local(self, key: str, value: StateValue) -> None:
        """Set a value this worker wrote (or is writing) before the KV echo arrives.

        The held revision is kept, so the KV's own entry for the write replaces it later.
        """
        scope = scope_of_key(key)
        if scope is not None:
            self._set(key, scope, value)

    def reset(self) -> None:
        """Forget every value and revision (the bucket was recreated, purged or restored)."""
        for table in (self._revisions, self._globals, self._operator, self._auto):
            table.clear()
        self._accounts.clear()
        self._cleared_at.clear()
        self._strategies.clear()
        self._symbols.clear()
        self.restricted.reset()
        self._global = None
        self._global_effective = _ACTIVE

    def _set(self, key: str, scope: tuple[str, str | None], value: StateValue | None) -> None:
        kind, account_id = scope
        restrictive = value is not None and value.state is not TradingState.ACTIVE
        if account_id is None:
            if restrictive:
                assert value is not None
                self._globals[key] = value
            else:
                self._globals.pop(key, None)
            g = self._global = self._most_severe_global()
            self._global_effective = _ACTIVE if g is None else Effective(g.state, GLOBAL, g)
            return
        if kind in (STRATEGY, SYMBOL):
            scoped = self._strategies if kind == STRATEGY else self._symbols
            if restrictive:
                assert value is not None
                scoped[account_id] = Effective(value.state, f"{kind} {account_id}", value)
            else:
                scoped.pop(account_id, None)
            return
        table = self._operator if kind == ACCOUNT else self._auto
        if restrictive:
            assert value is not None
            table[account_id] = value
        else:
            table.pop(account_id, None)
            if value is not None and value.updated_at > self._cleared_at.get(account_id, 0):
                self._cleared_at[account_id] = value.updated_at
        self._recompute_account(account_id)

    def _most_severe_global(self) -> StateValue | None:
        best = self._globals.get(GLOBAL_KEY)
        for value in self._globals.values():
            if more_severe(value, best):
                best = value
        return best

    def _recompute_account(self, account_id: str) -> None:
        operator = self._operator.get(account_id)
        auto = self._auto.get(account_id)
        if operator is None and auto is None:
            self._accounts.pop(account_id, None)
        elif operator is not None and not more_severe(auto, operator):
            self._accounts[account_id] = Effective(operator.state, _SCOPE_TEXT[ACCOUNT], operator)
        else:
            assert auto is not None
            self._accounts[account_id] = Effective(auto.state, _SCOPE_TEXT[AUTO], auto)

    def entries(self) -> list[tuple[str, StateValue | None, int]]:
        """Every trading-state key held: (key, restrictive value or None when ACTIVE, KV
        revision; 0 for a value this worker set and the bucket has not echoed yet), by key."""
        held: dict[str, StateValue | None] = dict.fromkeys(self._revisions)
        held.update(self._globals)
        held.update({account_key(a): v for a, v in self._operator.items()})
        held.update({auto_key(a): v for a, v in self._auto.items()})
        held.update({strategy_key(s): e.value for s, e in self._strategies.items()})
        held.update({symbol_key(s): e.value for s, e in self._symbols.items()})
        return [(k, held[k], self._revisions.get(k, 0)) for k in sorted(held)]

    def revision(self, key: str) -> int:
        """The KV revision held for ``key`` (0 when none)."""
        return self._revisions.get(key, 0)

    def value(self, key: str) -> StateValue | None:
        """The restrictive value held for ``key``; None when ACTIVE, absent or not a state key."""
        scope = scope_of_key(key)
        if scope is None:
            return None
        kind, account_id = scope
        if account_id is None:
            return self._globals.get(key)
        if kind in (STRATEGY, SYMBOL):
            eff = (self._strategies if kind == STRATEGY else self._symbols).get(account_id)
            return None if eff is None else eff.value
        return (self._operator if kind == ACCOUNT else self._auto).get(account_id)

    @property
    def global_value(self) -> StateValue | None:
        """The global value (the most severe of the global and unknown keys), None when ACTIVE."""
        return self._global

    def account_value(self, account_id: str) -> StateValue | None:
        """The operators' value of the account, None when ACTIVE."""
        return self._operator.get(account_id)

    def auto_value(self, account_id: str) -> StateValue | None:
        """The workers' automatic value of the account, None when ACTIVE."""
        return self._auto.get(account_id)

    def account_severity(self, account_id: str) -> int:
        """Severity (``STATE_SEVERITY``) of the account's own states, operator or automatic."""
        eff = self._accounts.get(account_id)
        return 0 if eff is None else STATE_SEVERITY[eff.state]

    def cleared_at(self, account_id: str) -> int:
        """``updated_at`` (ms, the writer's clock) of the latest ACTIVE value written to the
        account's operator or automatic key; 0 when none was seen."""
        return self._cleared_at.get(account_id, 0)

    def halted_accounts(self) -> list[str]:
        """Accounts HALTED at account scope (operator or automatic)."""
        return [a for a, e in self._accounts.items() if e.state is TradingState.HALTED]

    def strategy_value(self, strategy_id: str) -> StateValue | None:
        """The operators' value of the strategy, None when ACTIVE."""
        eff = self._strategies.get(strategy_id)
        return None if eff is None else eff.value

    def symbol_value(self, symbol: str) -> StateValue | None:
        """The operators' value of the symbol, None when ACTIVE."""
        eff = self._symbols.get(symbol)
        return None if eff is None else eff.value

    def effective(
        self, account_id: str, strategy_id: str | None = None, symbol: str | None = None
    ) -> Effective:
        """The most severe of the global, the operator and the automatic state of the account,
        and (for an order) of its strategy's and its symbol's (a tie goes to the first of
        global, account operator, account automatic, strategy, symbol)."""
        best = self._global_effective
        a = self._accounts.get(account_id)
        if a is not None and STATE_SEVERITY[a.state] > STATE_SEVERITY[best.state]:
            best = a
        if strategy_id is not None and self._strategies:
            s = self._strategies.get(strategy_id)
            if s is not None and STATE_SEVERITY[s.state] > STATE_SEVERITY[best.state]:
                best = s
        if symbol is not None and self._symbols:
            y = self._symbols.get(symbol)
            if y is not None and STATE_SEVERITY[y.state] > STATE_SEVERITY[best.state]:
                best = y
        return best
