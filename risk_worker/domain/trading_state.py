"""Trading state (the emergency stop): the worker's copy of the KV bucket and the rules on it.

The keys, their parsing and the stored value are in :mod:`risk_worker.domain.state_keys`
(re-exported here). An absent key means ACTIVE. The effective state of an account is the most
severe of the global (and unknown) value, its operator value and its automatic value; an
order's adds its strategy's (the operators', every account), the automatic trip of its strategy
on its account, and its symbol's (issue 12, issue 13). Updates carry the KV revision;
an update with a revision not newer than the one held for its key is ignored, so a late delivery
can never roll the copy back (a bucket recreated under the watcher is the watcher's business:
it calls :meth:`TradingStates.reset` and reads the bucket again).
"""

from __future__ import annotations

from risk_worker.domain.state_keys import (
    ACCOUNT,
    ACCOUNT_KEY_PREFIX,
    AUTO,
    AUTO_KEY_PREFIX,
    AUTO_STRATEGY,
    GLOBAL,
    GLOBAL_KEY,
    STATE_KEY_PREFIX,
    STRATEGY,
    STRATEGY_KEY_PREFIX,
    SYMBOL,
    SYMBOL_KEY_PREFIX,
    UNKNOWN,
    WIRE_SCOPE,
    Effective,
    StateKey,
    StateValue,
    account_key,
    auto_key,
    auto_strategy_key,
    more_severe,
    parse_state_key,
    scope_of_key,
    strategy_key,
    symbol_key,
)
from risk_worker.domain.state_tables import ACTIVE_EFFECTIVE, StateTables
from risk_worker.domain.types import STATE_SEVERITY
from risk_worker.domain.vocab import (
    TRADING_STATE_ACTIVE,
)

__all__ = [
    "ACCOUNT",
    "ACCOUNT_KEY_PREFIX",
    "AUTO",
    "AUTO_KEY_PREFIX",
    "AUTO_STRATEGY",
    "GLOBAL",
    "GLOBAL_KEY",
    "STATE_KEY_PREFIX",
    "STRATEGY",
    "STRATEGY_KEY_PREFIX",
    "SYMBOL",
    "SYMBOL_KEY_PREFIX",
    "UNKNOWN",
    "WIRE_SCOPE",
    "Effective",
    "StateKey",
    "StateTables",
    "StateValue",
    "TradingStates",
    "account_key",
    "auto_key",
    "auto_strategy_key",
    "more_severe",
    "parse_state_key",
    "scope_of_key",
    "strategy_key",
    "symbol_key",
]

_SCOPE_TEXT = {ACCOUNT: "account", AUTO: "account (automatic)"}


def _auto_strategy_scope(account_id: str, strategy_id: str) -> str:
    return f"strategy {strategy_id} of account {account_id} (automatic)"


class TradingStates(StateTables):
    """The worker's copy of every trading state, by key, with the KV revision of each, and the
    effective state of an account or an order (the reads are :class:`StateTables`').

    ``restricted`` is the copy of the restricted list kept in the same bucket (reset with it).
    """

    __slots__ = ()

    def apply(self, key: str, value: StateValue | None, revision: int) -> bool:
        """Apply a KV entry (None for a delete or purge); False when ignored as not newer.

        Keys that are not trading-state keys are ignored (False).
        """
        parsed = parse_state_key(key)
        if parsed is None or revision <= self._revisions.get(key, 0):
            return False
        self._revisions[key] = revision
        self._set(key, parsed, value)
        return True

    def set_local(self, key: str, value: StateValue) -> None:
        """Set a value this worker wrote (or is writing) before the KV echo arrives.

        The held revision is kept, so the KV's own entry for the write replaces it later.
        """
        parsed = parse_state_key(key)
        if parsed is not None:
            self._set(key, parsed, value)

    def reset(self) -> None:
        """Forget every value and revision (the bucket was recreated, purged or restored)."""
        for table in (self._revisions, self._globals, self._operator, self._auto):
            table.clear()
        for scoped in (self._accounts, self._strategies, self._symbols, self._auto_strategies):
            scoped.clear()
        self._cleared_at.clear()
        self._strategy_cleared_at.clear()
        self.restricted.reset()
        self._global = None
        self._global_effective = ACTIVE_EFFECTIVE

    def _set(self, key: str, k: StateKey, value: StateValue | None) -> None:
        kind = k.kind
        restrictive = value is not None and value.state is not TRADING_STATE_ACTIVE
        if kind in (GLOBAL, UNKNOWN):
            if value is not None and restrictive:
                self._globals[key] = value
            else:
                self._globals.pop(key, None)
            g = self._global = self._most_severe_global()
            eff = ACTIVE_EFFECTIVE if g is None else Effective(g.state, GLOBAL, g)
            self._global_effective = eff
        elif kind in (STRATEGY, SYMBOL):
            ident = k.strategy_id if kind == STRATEGY else k.symbol
            assert ident is not None
            scoped = self._strategies if kind == STRATEGY else self._symbols
            if value is not None and restrictive:
                scoped[ident] = Effective(value.state, f"{kind} {ident}", value)
            else:
                scoped.pop(ident, None)
        elif kind == AUTO_STRATEGY:
            assert k.account_id is not None and k.strategy_id is not None
            pair = (k.account_id, k.strategy_id)
            if value is not None and restrictive:
                text = _auto_strategy_scope(*pair)
                self._auto_strategies[pair] = Effective(value.state, text, value)
            else:
                self._auto_strategies.pop(pair, None)
                if value is not None and value.updated_at > self._strategy_cleared_at.get(pair, 0):
                    self._strategy_cleared_at[pair] = value.updated_at
        else:
            account_id = k.account_id
            assert account_id is not None
            table = self._operator if kind == ACCOUNT else self._auto
            if value is not None and restrictive:
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
        held.update({auto_strategy_key(*p): e.value for p, e in self._auto_strategies.items()})
        held.update({symbol_key(s): e.value for s, e in self._symbols.items()})
        return [(k, held[k], self._revisions.get(k, 0)) for k in sorted(held)]

    def value(self, key: str) -> StateValue | None:
        """The restrictive value held for ``key``; None when ACTIVE, absent or not a state key."""
        k = parse_state_key(key)
        if k is None:
            return None
        if k.kind in (GLOBAL, UNKNOWN):
            return self._globals.get(key)
        if k.kind == ACCOUNT:
            return self._operator.get(k.account_id or "")
        if k.kind == AUTO:
            return self._auto.get(k.account_id or "")
        if k.kind == AUTO_STRATEGY:
            return self.auto_strategy_value(k.account_id or "", k.strategy_id or "")
        scoped = self._strategies if k.kind == STRATEGY else self._symbols
        eff = scoped.get(k.strategy_id or k.symbol or "")
        return None if eff is None else eff.value

    def effective(
        self, account_id: str, strategy_id: str | None = None, symbol: str | None = None
    ) -> Effective:
        """The most severe of the global, the operator and the automatic state of the account,
        and (for an order) of its strategy's, the automatic trip of its strategy on the
        account, and its symbol's (a tie goes to the first of global, account operator,
        account automatic, strategy, strategy of the account automatic, symbol)."""
        best = self._global_effective
        a = self._accounts.get(account_id)
        if a is not None and STATE_SEVERITY[a.state] > STATE_SEVERITY[best.state]:
            best = a
        if strategy_id is not None:
            if self._strategies:
                s = self._strategies.get(strategy_id)
                if s is not None and STATE_SEVERITY[s.state] > STATE_SEVERITY[best.state]:
                    best = s
            if self._auto_strategies:
                t = self._auto_strategies.get((account_id, strategy_id))
                if t is not None and STATE_SEVERITY[t.state] > STATE_SEVERITY[best.state]:
                    best = t
        if symbol is not None and self._symbols:
            y = self._symbols.get(symbol)
            if y is not None and STATE_SEVERITY[y.state] > STATE_SEVERITY[best.state]:
                best = y
        return best
