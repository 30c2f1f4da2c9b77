"""Trading state (the emergency stop): a local copy of the KV bucket and the rules on it.

Keys: ``trading_state.global`` and ``trading_state.account.<account_id>``; an absent key means
ACTIVE. The effective state of an account is the more severe of the global and account ones.
Updates carry the KV revision; an update with a revision not newer than the one held for its
key is ignored, so a late delivery can never roll the copy back.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from risk_worker.domain.types import STATE_SEVERITY, StateSource, TradingState

GLOBAL_KEY = "trading_state.global"
ACCOUNT_KEY_PREFIX = "trading_state.account."


class StateValue(msgspec.Struct, frozen=True):
    """The value stored under a trading-state key.

    Attributes:
        state: ACTIVE, REDUCING or HALTED.
        reason: why (free text).
        updated_by: operator name or worker id.
        updated_at: ms since epoch.
        source: operator, policy or circuit_breaker.
    """

    state: TradingState
    reason: str = ""
    updated_by: str = ""
    updated_at: int = 0
    source: StateSource = StateSource.OPERATOR


class Effective(NamedTuple):
    """An account's effective state, the scope that imposes it and that scope's value."""

    state: TradingState
    scope: str
    value: StateValue | None


def account_key(account_id: str) -> str:
    """KV key of an account's trading state."""
    return ACCOUNT_KEY_PREFIX + account_id


def scope_of_key(key: str) -> tuple[str, str | None] | None:
    """("global", None) or ("account", id) for a trading-state key; None for any other key."""
    if key == GLOBAL_KEY:
        return ("global", None)
    if key.startswith(ACCOUNT_KEY_PREFIX) and len(key) > len(ACCOUNT_KEY_PREFIX):
        return ("account", key[len(ACCOUNT_KEY_PREFIX) :])
    return None


_ACTIVE = Effective(TradingState.ACTIVE, "global", None)


class TradingStates:
    """The worker's copy of every trading state, by key, with the KV revision of each."""

    __slots__ = ("_accounts", "_global", "_revisions")

    def __init__(self) -> None:
        self._global: StateValue | None = None
        self._accounts: dict[str, StateValue] = {}
        self._revisions: dict[str, int] = {}

    def apply(self, key: str, value: StateValue | None, revision: int) -> bool:
        """Apply a KV entry (None for a delete or purge); False when ignored as not newer.

        Keys that are not trading-state keys are ignored (False).
        """
        scope = scope_of_key(key)
        if scope is None or revision <= self._revisions.get(key, 0):
            return False
        self._revisions[key] = revision
        self._set(scope[1], value)
        return True

    def set_local(self, key: str, value: StateValue) -> None:
        """Set a value this worker wrote (or is writing) before the KV echo arrives.

        The held revision is kept, so the KV's own entry for the write replaces it later.
        """
        scope = scope_of_key(key)
        if scope is not None:
            self._set(scope[1], value)

    def _set(self, account_id: str | None, value: StateValue | None) -> None:
        active = value is None or value.state is TradingState.ACTIVE
        if account_id is None:
            self._global = None if active else value
        elif active:
            self._accounts.pop(account_id, None)
        else:
            assert value is not None
            self._accounts[account_id] = value

    def revision(self, key: str) -> int:
        """The KV revision held for ``key`` (0 when none)."""
        return self._revisions.get(key, 0)

    @property
    def global_value(self) -> StateValue | None:
        """The global value, None when ACTIVE."""
        return self._global

    def account_value(self, account_id: str) -> StateValue | None:
        """The account's own value, None when ACTIVE."""
        return self._accounts.get(account_id)

    def halted_accounts(self) -> list[str]:
        """Accounts HALTED at account scope."""
        return [a for a, v in self._accounts.items() if v.state is TradingState.HALTED]

    def effective(self, account_id: str) -> Effective:
        """The more severe of the global and the account state (global wins a tie)."""
        g = self._global
        a = self._accounts.get(account_id)
        if a is not None and (g is None or STATE_SEVERITY[a.state] > STATE_SEVERITY[g.state]):
            return Effective(a.state, "account", a)
        if g is not None:
            return Effective(g.state, "global", g)
        return _ACTIVE
