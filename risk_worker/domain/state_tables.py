"""The tables of :class:`~risk_worker.domain.trading_state.TradingStates` and their reads.

Every table holds restrictive values only (ACTIVE is the absence of an entry), keyed by the ids
the trading-state key names (:mod:`risk_worker.domain.state_keys`); ``TradingStates`` fills them
from the KV bucket and computes the effective state of an account or an order.
"""

from __future__ import annotations

from typing import Final

from risk_worker.domain.restricted import RestrictedList
from risk_worker.domain.state_keys import GLOBAL, Effective, StateValue
from risk_worker.domain.types import STATE_SEVERITY
from risk_worker.domain.vocab import (
    TRADING_STATE_ACTIVE,
    TRADING_STATE_HALTED,
)

ACTIVE_EFFECTIVE: Final = Effective(TRADING_STATE_ACTIVE, GLOBAL, None)
"""The effective state where nothing restricts."""


class StateTables:
    """The copy's tables (by account, strategy, (account, strategy) or symbol) and what the
    monitor and the status read from them.

    ``restricted`` is the copy of the restricted list kept in the same bucket.
    """

    __slots__ = (
        "_accounts",
        "_auto",
        "_auto_strategies",
        "_cleared_at",
        "_global",
        "_global_effective",
        "_globals",
        "_operator",
        "_revisions",
        "_strategies",
        "_strategy_cleared_at",
        "_symbols",
        "restricted",
    )

    def __init__(self) -> None:
        self._revisions: dict[str, int] = {}
        self._globals: dict[str, StateValue] = {}  # global and unknown keys, restrictive only
        self._global: StateValue | None = None  # the most severe of _globals
        self._global_effective = ACTIVE_EFFECTIVE
        self._operator: dict[str, StateValue] = {}
        self._auto: dict[str, StateValue] = {}
        self._accounts: dict[str, Effective] = {}  # the more severe of _operator and _auto
        self._cleared_at: dict[str, int] = {}
        self._strategies: dict[str, Effective] = {}  # restrictive only
        self._auto_strategies: dict[tuple[str, str], Effective] = {}  # restrictive only
        self._strategy_cleared_at: dict[tuple[str, str], int] = {}
        self._symbols: dict[str, Effective] = {}  # restrictive only
        self.restricted = RestrictedList()

    def revision(self, key: str) -> int:
        """The KV revision held for ``key`` (0 when none)."""
        return self._revisions.get(key, 0)

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
        return [a for a, e in self._accounts.items() if e.state is TRADING_STATE_HALTED]

    def auto_strategy_value(self, account_id: str, strategy_id: str) -> StateValue | None:
        """The workers' automatic value of one strategy of one account, None when ACTIVE."""
        eff = self._auto_strategies.get((account_id, strategy_id))
        return None if eff is None else eff.value

    def strategy_severity(self, account_id: str, strategy_id: str) -> int:
        """Severity (``STATE_SEVERITY``) of the automatic trip of the strategy on the account
        (0 when none; the operators' stop of the strategy does not count)."""
        eff = self._auto_strategies.get((account_id, strategy_id))
        return 0 if eff is None else STATE_SEVERITY[eff.state]

    def strategy_cleared_at(self, account_id: str, strategy_id: str) -> int:
        """``updated_at`` (ms, the writer's clock) of the latest ACTIVE value written to the
        automatic key of the strategy on the account; 0 when none was seen."""
        return self._strategy_cleared_at.get((account_id, strategy_id), 0)

    def strategy_value(self, strategy_id: str) -> StateValue | None:
        """The operators' value of the strategy, None when ACTIVE."""
        eff = self._strategies.get(strategy_id)
        return None if eff is None else eff.value

    def symbol_value(self, symbol: str) -> StateValue | None:
        """The operators' value of the symbol, None when ACTIVE."""
        eff = self._symbols.get(symbol)
        return None if eff is None else eff.value
