"""The restricted list: instruments on which risk-increasing orders are denied.

Keys in the ``risk_control`` bucket (subjects.md §7), written by operators only:

- ``restricted.<symbol>``: the symbol is restricted for every account;
- ``restricted.account.<account_id>.<symbol>``: restricted for one account.

Identifiers hold no dots (``IDENTIFIER_PATTERN``), so a key splits without ambiguity: two
tokens after ``restricted`` are ``account.<symbol>`` only when the first is ``account`` and a
third follows. A key of any other shape (``restricted.a.b``) names no symbol the worker can
match: it is ignored (the watcher logs it). An absent, deleted or purged key lifts the
restriction. Like the trading states, an update whose KV revision is not newer than the one
held for its key is ignored, so a late delivery cannot roll the copy back.

Rule (ESMA RTS 6 art. 15, SEC 15c3-5 (c)(2)(ii) "restricted securities"): a risk-increasing
order on a restricted symbol is denied ``restricted_symbol``; an order that strictly reduces the
position passes, so a position in a newly restricted instrument can still be closed.
"""

from __future__ import annotations

import msgspec

from risk_worker.domain.order import Decision, Order, deny
from risk_worker.domain.types import DenyReason, RiskLevel, TradingState

RESTRICTED_PREFIX = "restricted."
RESTRICTED_ACCOUNT_PREFIX = "restricted.account."


class Restriction(msgspec.Struct, frozen=True):
    """The value stored under a restricted-list key.

    Attributes:
        reason: why (free text, shown to the trader in the denial).
        by: the operator who restricted it.
        at: when (ms since epoch, the operator's clock).
    """

    reason: str = ""
    by: str = ""
    at: int = 0


def restricted_key(symbol: str, account_id: str | None = None) -> str:
    """KV key restricting ``symbol`` globally (``account_id`` None) or for one account."""
    if account_id is None:
        return RESTRICTED_PREFIX + symbol
    return f"{RESTRICTED_ACCOUNT_PREFIX}{account_id}.{symbol}"


def parse_restricted_key(key: str) -> tuple[str | None, str] | None:
    """(account_id or None for global, symbol) of a restricted-list key; None for any other
    key, or a ``restricted.*`` key of another shape."""
    if not key.startswith(RESTRICTED_PREFIX):
        return None
    tokens = key[len(RESTRICTED_PREFIX) :].split(".")
    if len(tokens) == 1 and tokens[0]:
        return (None, tokens[0])
    if len(tokens) == 3 and tokens[0] == "account" and tokens[1] and tokens[2]:
        return (tokens[1], tokens[2])
    return None


class RestrictedList:
    """The worker's copy of the restricted list, with the KV revision of each key.

    ``nonempty``: whether anything is restricted, kept as a plain attribute (the check path
    reads it on every check and skips the look-up otherwise; from the compiled core an
    attribute read costs a fraction of a call to ``__bool__``).
    """

    __slots__ = ("_accounts", "_global", "_revisions", "nonempty")

    def __init__(self) -> None:
        self._revisions: dict[str, int] = {}
        self._global: dict[str, Restriction] = {}  # symbol → restriction
        self._accounts: dict[tuple[str, str], Restriction] = {}  # (account, symbol) → restriction
        self.nonempty = False

    def __bool__(self) -> bool:
        """Whether anything is restricted (``nonempty``)."""
        return self.nonempty

    def apply(self, key: str, value: Restriction | None, revision: int) -> bool:
        """Apply a KV entry (None for a delete or purge); False when ignored (not a
        restricted-list key, or not newer than the revision held)."""
        parsed = parse_restricted_key(key)
        if parsed is None or revision <= self._revisions.get(key, 0):
            return False
        self._revisions[key] = revision
        self.set_local(key, value)
        return True

    def set_local(self, key: str, value: Restriction | None) -> None:
        """Set a value without a revision (a more restrictive entry seen during a reset)."""
        parsed = parse_restricted_key(key)
        if parsed is None:
            return
        account_id, symbol = parsed
        if account_id is None:
            if value is None:
                self._global.pop(symbol, None)
            else:
                self._global[symbol] = value
        elif value is None:
            self._accounts.pop((account_id, symbol), None)
        else:
            self._accounts[(account_id, symbol)] = value
        self.nonempty = bool(self._global) or bool(self._accounts)

    def reset(self) -> None:
        """Forget every entry and revision (the bucket was recreated, purged or restored)."""
        self._revisions.clear()
        self._global.clear()
        self._accounts.clear()
        self.nonempty = False

    def find(self, account_id: str, symbol: str) -> tuple[str, Restriction] | None:
        """(key, restriction) restricting ``symbol`` for ``account_id``: the global entry
        first, then the account's; None when the symbol is not restricted for it."""
        found = self._global.get(symbol)
        if found is not None:
            return (restricted_key(symbol), found)
        found = self._accounts.get((account_id, symbol))
        if found is not None:
            return (restricted_key(symbol, account_id), found)
        return None

    def revision(self, key: str) -> int:
        """The KV revision held for ``key`` (0 when none)."""
        return self._revisions.get(key, 0)

    def entries(self) -> list[tuple[str, Restriction]]:
        """Every (key, restriction), sorted by key."""
        out = [(restricted_key(s), r) for s, r in self._global.items()]
        out += [(restricted_key(s, a), r) for (a, s), r in self._accounts.items()]
        return sorted(out, key=lambda e: e[0])


def restricted_denial(
    order: Order, restricted: RestrictedList, state: TradingState
) -> Decision | None:
    """The ``restricted_symbol`` denial of an order on a restricted symbol; None when its
    symbol is not restricted for its account. The caller lets strictly reducing orders pass
    (:mod:`risk_worker.domain.restricted`)."""
    found = restricted.find(order.account_id, order.symbol)
    if found is None:
        return None
    key, r = found
    whom = "account " + order.account_id if key.startswith(RESTRICTED_ACCOUNT_PREFIX) else "all"
    return deny(
        DenyReason.RESTRICTED_SYMBOL,
        f"{order.symbol} is restricted ({whom}) by {r.by or 'an operator'}: {r.reason}; "
        "only orders that reduce a position",
        RiskLevel.BREACHED,
        state,
    )
