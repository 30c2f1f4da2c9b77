"""The account book: balances, positions, reservations and marks, kept current from events.

Every mutation here is all-or-nothing: an event is checked first and then applied whole, so the
book is never half-updated. Events arrive already validated by the wire layer.
"""

from __future__ import annotations

from typing import Final

from risk_worker.domain.book_events import Fill, PnlSnapshot, PositionSnapshot
from risk_worker.domain.mark import Mark
from risk_worker.domain.pending import PendingBook
from risk_worker.domain.positions import Position, fill_effect
from risk_worker.domain.returns import ReturnHistory
from risk_worker.domain.strategy_book import (
    StrategyBook,
    fill_strategy,
    set_strategy_position,
    strategy_book,
)
from risk_worker.domain.types import ApplyResult
from risk_worker.domain.vocab import (
    APPLY_RESULT_APPLIED,
    APPLY_RESULT_DUPLICATE,
    APPLY_RESULT_STALE,
    APPLY_RESULT_STRATEGY_LIMIT,
    SIDE_BUY,
)
from risk_worker.domain.window_max import EquityWindow

FILL_IDS_KEPT: Final = 100_000
"""Fill ids remembered per account for de-duplication (oldest forgotten first)."""


class Account:
    """One account's state.

    Attributes:
        account_id: identifier.
        known: True once a ``pnl.update`` or ``positions.update`` was seen; checks for an
            account that is not known are denied ``unknown_account``.
        balance: wallet balance including realized PnL (quote).
        balance_known: True once a ``pnl.update`` set the balance (before that it is only the
            fills' cash flows, from 0); equity is not observed for peak or day start until then.
        realized_pnl: realized PnL as last reported or accumulated from fills (quote).
        positions: symbol → position (flat ones are kept for their timestamps).
        pending: reservations of approved orders.
        peak_equity: high-water mark of equity (quote), None until first observed.
        day_start_equity: equity at the first observation of the trading day (quote), or None.
        trading_day: the trading day (day number, see ``RiskConfig.trading_day``) that
            ``day_start_equity`` belongs to.
        equity_window: recent equity observations behind ``drawdown_window``
            (:mod:`~risk_worker.domain.window_max`), None until first observed.
        pnl_ms: timestamp of the last applied ``pnl.update`` (ms since epoch).
        emergency_breached: whether the last monitor evaluation found an emergency violation
            (trips happen on the onset of a breach, so an operator's clear is not undone).
        emergency_onset_ms: when the current emergency breach began (ms since epoch, the
            monitor's clock; 0 while not breached).
        breaker_fired_ms: when the circuit breaker last reached its threshold for the account
            (ms since epoch; 0 never), on any instance, holder of the monitor lease or not.
        strategies: strategy id → its book within the account
            (:mod:`~risk_worker.domain.strategy_book`).
    """

    __slots__ = (
        "_fill_ids",
        "account_id",
        "balance",
        "balance_known",
        "breaker_fired_ms",
        "day_start_equity",
        "emergency_breached",
        "emergency_onset_ms",
        "equity_window",
        "known",
        "peak_equity",
        "pending",
        "pnl_ms",
        "positions",
        "realized_pnl",
        "strategies",
        "trading_day",
    )

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.known = False
        self.balance = 0.0
        self.balance_known = False
        self.realized_pnl = 0.0
        self.positions: dict[str, Position] = {}
        self.pending = PendingBook()
        self.peak_equity: float | None = None
        self.day_start_equity: float | None = None
        self.trading_day: int | None = None
        self.equity_window: EquityWindow | None = None
        self.pnl_ms = 0
        self.emergency_breached = False
        self.emergency_onset_ms = 0
        self.breaker_fired_ms = 0
        self.strategies: dict[str, StrategyBook] = {}
        self._fill_ids: dict[str, None] = {}

    def remember_fill(self, fill_id: str) -> bool:
        """Record a fill id; False when it was already seen (a repeat)."""
        if fill_id in self._fill_ids:
            return False
        self._fill_ids[fill_id] = None
        if len(self._fill_ids) > FILL_IDS_KEPT:
            del self._fill_ids[next(iter(self._fill_ids))]
        return True


def valuation_price(position: Position, marks: dict[str, Mark]) -> float:
    """Price a position is valued at: its mark, or its entry price when it has no mark yet."""
    mark = marks.get(position.symbol)
    return position.entry_price if mark is None else mark.price


class AccountBook:
    """All accounts and all marks held by this worker instance, and the marks' sampled
    returns for historical VaR (:class:`~risk_worker.domain.returns.ReturnHistory`)."""

    __slots__ = ("accounts", "marks", "returns")

    def __init__(self, returns: ReturnHistory | None = None) -> None:
        self.accounts: dict[str, Account] = {}
        self.marks: dict[str, Mark] = {}
        self.returns = ReturnHistory() if returns is None else returns

    def account(self, account_id: str) -> Account:
        """The account, created (not yet known) when first referenced."""
        acct = self.accounts.get(account_id)
        if acct is None:
            acct = self.accounts[account_id] = Account(account_id)
        return acct

    def set_mark(self, symbol: str, price: float, timestamp: int, now_ms: int) -> None:
        """Record the latest mark price of a symbol (O(1); metrics are computed when asked)."""
        self.marks[symbol] = Mark(price, now_ms, timestamp)

    def apply_position(self, event: PositionSnapshot) -> ApplyResult:
        """Replace one position with a snapshot; an older snapshot than the held one is STALE.

        A snapshot naming a strategy replaces that strategy's position only, and does not make
        the account known; STRATEGY_LIMIT when the account has no room for a new strategy.
        """
        acct = self.account(event.account_id)
        if event.strategy_id is not None:
            strategy = strategy_book(acct.strategies, event.strategy_id)
            if strategy is None:
                return APPLY_RESULT_STRATEGY_LIMIT
            applied = set_strategy_position(
                strategy, event.symbol, event.quantity, event.entry_price, event.timestamp
            )
            return APPLY_RESULT_APPLIED if applied else APPLY_RESULT_STALE
        acct.known = True  # seen through positions.update, even when this one is stale
        pos = acct.positions.get(event.symbol)
        if pos is not None and event.timestamp < pos.updated_ms:
            return APPLY_RESULT_STALE
        if pos is None:
            pos = acct.positions[event.symbol] = Position(event.symbol)
        pos.quantity = event.quantity
        pos.entry_price = event.entry_price if event.quantity != 0.0 else 0.0
        pos.snapshot_ms = pos.updated_ms = event.timestamp
        return APPLY_RESULT_APPLIED

    def apply_fill(self, event: Fill) -> ApplyResult:
        """Apply a fill to its position and balance; consume the order's reservation.

        Balance += realized PnL − fee, unless the fill is at or before the last ``pnl.update``
        (``timestamp ≤ pnl_ms``): that balance already contains its cash flow, so a late fill
        moves the position only. A repeated ``fill_id`` is DUPLICATE (and changes nothing);
        a fill not newer than the position's last snapshot is STALE (the snapshot already
        contains it) but still consumes the order's reservation, since the venue did fill it.

        A fill naming a strategy also moves that strategy's book, judged stale or not against
        the strategy's own snapshots; STRATEGY_LIMIT when the account has no room for a new
        strategy (the account's part is applied all the same).
        """
        acct = self.account(event.account_id)
        if not acct.remember_fill(event.fill_id):
            return APPLY_RESULT_DUPLICATE
        acct.pending.consume(event.order_id, event.quantity)
        signed = event.quantity if event.side is SIDE_BUY else -event.quantity
        result = APPLY_RESULT_APPLIED
        if event.strategy_id is not None:
            strategy = strategy_book(acct.strategies, event.strategy_id)
            if strategy is None:
                result = APPLY_RESULT_STRATEGY_LIMIT
            else:
                fill_strategy(
                    strategy, event.symbol, signed, event.price, event.fee, event.timestamp
                )
        pos = acct.positions.get(event.symbol)
        if pos is not None and event.timestamp <= pos.snapshot_ms:
            return APPLY_RESULT_STALE if result is APPLY_RESULT_APPLIED else result
        if pos is None:
            pos = acct.positions[event.symbol] = Position(event.symbol)
        pos.quantity, pos.entry_price, realized = fill_effect(
            pos.quantity, pos.entry_price, signed, event.price
        )
        pos.updated_ms = max(pos.updated_ms, event.timestamp)
        if event.timestamp > acct.pnl_ms:
            acct.balance += realized - event.fee
            acct.realized_pnl += realized
        return result

    def apply_pnl(self, event: PnlSnapshot) -> ApplyResult:
        """Set the balance from ``pnl.update``; an update older than the last one is STALE.

        balance is authoritative; when only equity is given,
        balance = equity − the book's current unrealized PnL.
        """
        acct = self.account(event.account_id)
        if event.timestamp < acct.pnl_ms:
            return APPLY_RESULT_STALE
        if event.balance is not None:
            acct.balance = event.balance
        elif event.equity is not None:
            acct.balance = event.equity - self.unrealized_pnl(acct)
        if event.realized_pnl is not None:
            acct.realized_pnl = event.realized_pnl
        acct.pnl_ms = event.timestamp
        acct.known = acct.balance_known = True
        return APPLY_RESULT_APPLIED

    def unrealized_pnl(self, acct: Account) -> float:
        """Σ qty × (mark − entry) over the account's positions (quote)."""
        marks = self.marks
        return sum(
            p.quantity * (valuation_price(p, marks) - p.entry_price)
            for p in acct.positions.values()
        )
