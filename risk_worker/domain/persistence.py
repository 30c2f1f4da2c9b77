"""What survives a restart: account state and marks, exported and restored as plain values.

Events rebuild the book, but not everything can wait for them: the peak equity behind
``drawdown_max`` and the day-start equity behind ``drawdown_daily`` must never reset, and a
restarted worker should answer at once. So the account's balance, positions, peak, day start
and marks are exported (by the monitor, to a snapshot store) and restored at start.

A restored account whose state is older than the maximum snapshot age is restored but not
*known*: its checks are denied ``unknown_account`` until a fresh ``pnl.update`` or
``positions.update`` arrives. Its peak and day start are kept either way. Reservations are
not restored: they lapse within the pending TTL anyway.

Each stored account also records ``inputs_seq``: the last ``RISK_INPUTS`` stream sequence its
state includes (taken in the same synchronous step as the state). A restart restores the account
and replays the stream after that sequence (:func:`restore` reports where to start and what to
skip per account). An account without a valid sequence (absent in older snapshots, not an integer,
out of range, beyond the stream's last sequence) is restored for its peak and day start only
and rebuilt from the stream's start, so no event is applied twice.

A stored value is validated like an event (:mod:`risk_worker.domain.bounds`: identifiers,
finite numbers within bounds): one that fails is refused whole and never restored, so a
corrupt or infinite peak cannot switch drawdown protection off across a restart.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from risk_worker.domain.book import Account, AccountBook
from risk_worker.domain.bounds import (
    is_equity,
    is_identifier,
    is_millis,
    is_money,
    is_price,
)
from risk_worker.domain.mark import Mark
from risk_worker.domain.positions import Position
from risk_worker.domain.strategy_persistence import (
    StrategyState,
    export_strategies,
    position_problem,
    restore_strategies,
    strategies_problem,
)
from risk_worker.domain.types import MS_PER_DAY


class PositionState(msgspec.Struct, frozen=True, gc=False):
    """A position as stored: signed base quantity, entry price (quote), timestamps (ms)."""

    symbol: str
    quantity: float
    entry_price: float
    snapshot_ms: int
    updated_ms: int


class AccountState(msgspec.Struct, frozen=True, gc=False):
    """An account as stored.

    Attributes:
        saved_ms: when the worker saved it (its clock, ms since epoch).
        peak_equity / day_start_equity: quote; None until first observed.
        trading_day: trading day (day number, ``RiskConfig.trading_day``) of
            ``day_start_equity``.
        balance_known: whether a ``pnl.update`` had set the balance (absent in older
            snapshots: False, so the day start waits for the next ``pnl.update``).
    """

    account_id: str
    balance: float
    realized_pnl: float
    pnl_ms: int
    known: bool
    positions: list[PositionState]
    peak_equity: float | None
    day_start_equity: float | None
    trading_day: int | None
    saved_ms: int
    balance_known: bool = False
    strategies: list[StrategyState] = msgspec.field(default_factory=list)
    """The account's strategy books (:mod:`~risk_worker.domain.strategy_persistence`;
    absent in older snapshots)."""
    inputs_seq: object = None
    """The last ``RISK_INPUTS`` sequence the state includes; any JSON value is decoded, so that
    an invalid one refuses only the sequence (:func:`inputs_seq_of`), not the account."""


class MarkState(msgspec.Struct, frozen=True, gc=False):
    """A mark as stored: price (quote), received_ms (worker clock) and source timestamp."""

    symbol: str
    price: float
    received_ms: int
    timestamp: int


def export_account(account: Account, now_ms: int, inputs_seq: int | None = None) -> AccountState:
    """The account's durable state (flat positions kept for their timestamps), including every
    ``RISK_INPUTS`` event up to ``inputs_seq`` (None: unknown)."""
    return AccountState(
        account_id=account.account_id,
        balance=account.balance,
        realized_pnl=account.realized_pnl,
        pnl_ms=account.pnl_ms,
        known=account.known,
        positions=[
            PositionState(p.symbol, p.quantity, p.entry_price, p.snapshot_ms, p.updated_ms)
            for p in account.positions.values()
        ],
        peak_equity=account.peak_equity,
        day_start_equity=account.day_start_equity,
        trading_day=account.trading_day,
        saved_ms=now_ms,
        balance_known=account.balance_known,
        strategies=export_strategies(account),
        inputs_seq=inputs_seq,
    )


def export_marks(book: AccountBook) -> list[MarkState]:
    """Every mark with its receive time."""
    return [MarkState(s, m.price, m.received_ms, m.timestamp) for s, m in book.marks.items()]


def account_problem(state: AccountState) -> str | None:
    """Why a stored account must not be restored (the first problem found), None when valid.

    Checks: identifiers; balance and realized PnL money (|x| ≤ 1e15 quote); peak and day start
    None or finite (|x| ≤ 1e30 quote); positions' quantities and entry prices within bounds
    (entry 0 only when flat); timestamps and the trading day within 0..2100-01-01; the
    strategy books likewise (:func:`~risk_worker.domain.strategy_persistence.strategies_problem`).
    """
    if not is_identifier(state.account_id):
        return "account_id is not an identifier"
    for name, money in (("balance", state.balance), ("realized_pnl", state.realized_pnl)):
        if not is_money(money):
            return f"{name} {money!r} out of bounds"
    for name, equity in (
        ("peak_equity", state.peak_equity),
        ("day_start_equity", state.day_start_equity),
    ):
        if equity is not None and not is_equity(equity):
            return f"{name} {equity!r} out of bounds"
    day = state.trading_day
    if day is not None and not is_millis(day * MS_PER_DAY):
        return f"trading_day {day!r} out of bounds"
    if not (is_millis(state.pnl_ms) and is_millis(state.saved_ms)):
        return "a timestamp out of bounds"
    for p in state.positions:
        problem = position_problem(p.symbol, p.quantity, p.entry_price, p.snapshot_ms, p.updated_ms)
        if problem is not None:
            return problem
    return strategies_problem(state.strategies)


def mark_problem(mark: MarkState) -> str | None:
    """Why a stored mark must not be restored, None when valid (symbol, price, timestamps)."""
    if not is_identifier(mark.symbol):
        return "symbol is not an identifier"
    if not is_price(mark.price):
        return f"price {mark.price!r} out of bounds"
    if not (is_millis(mark.received_ms) and is_millis(mark.timestamp)):
        return "a timestamp out of bounds"
    return None


MAX_STREAM_SEQ = 2**64 - 1
"""The largest JetStream stream sequence (an unsigned 64-bit integer)."""


def inputs_seq_of(state: AccountState, last_seq: int | None) -> tuple[int | None, str | None]:
    """The account's stored ``inputs_seq`` and why it is refused: (seq, None) when valid,
    (None, None) when absent, (None, problem) when not an integer in 0..2^64-1 or beyond
    ``last_seq`` (the stream's last sequence now: the stream was recreated since)."""
    seq = state.inputs_seq
    if seq is None:
        return None, None
    if isinstance(seq, bool) or not isinstance(seq, int):
        return None, f"inputs_seq {str(seq)[:40]!r} is not an integer"
    if not 0 <= seq <= MAX_STREAM_SEQ:
        return None, f"inputs_seq {seq} out of range"
    if last_seq is not None and seq > last_seq:
        return None, f"inputs_seq {seq} beyond the stream's last sequence {last_seq}"
    return seq, None


class RestoreReport(NamedTuple):
    """What :func:`restore` did: accounts restored (of which known), marks restored, one
    ``"<kind> <key>: <problem>"`` line per refused account, mark or account's ``inputs_seq``,
    and the replay plan: ``seqs`` maps each account restored with its balances to the last
    stream sequence its state includes; ``replay_from`` is the first sequence to replay (None:
    the stream's start, because an account was refused or restored without a valid sequence,
    or none was restored)."""

    accounts: int
    known: int
    marks: int
    refused_accounts: list[str]
    refused_marks: list[str]
    refused_seqs: list[str]
    seqs: dict[str, int]
    replay_from: int | None


def restore(
    book: AccountBook,
    accounts: list[AccountState],
    marks: list[MarkState],
    now_ms: int,
    max_age_ms: int,
    max_symbols: int,
    last_seq: int | None = None,
) -> RestoreReport:
    """Restore stored accounts and marks, refusing every invalid one (see the checks above).

    Args:
        book: the book to restore into.
        accounts / marks: as loaded from the snapshot store.
        now_ms: now (ms since epoch); max_age_ms: see :func:`restore_account`.
        max_symbols: the mark table's limit: marks of new symbols beyond it are refused.
        last_seq: the ``RISK_INPUTS`` stream's last sequence, when the stream is replayed
            after the restore: an account without a valid ``inputs_seq`` then gets only its
            peak and day start (not known, no balance, positions or strategy books) and is
            rebuilt by the replay. None: restore every account whole (a late restore, after
            the replay already rebuilt the book).
    """
    refused_accounts: list[str] = []
    refused_seqs: list[str] = []
    seqs: dict[str, int] = {}
    restored = known = 0
    from_start = False
    for state in accounts:
        problem = account_problem(state)
        if problem is not None:
            refused_accounts.append(f"account {state.account_id!r}: {problem}")
            # its events before the others' sequences must be replayed too
            from_start = from_start or last_seq is not None
            continue
        restored += 1
        seq, seq_problem = inputs_seq_of(state, last_seq)
        if seq_problem is not None:
            refused_seqs.append(f"inputs_seq of {state.account_id!r}: {seq_problem}")
        if last_seq is not None and seq is None:
            from_start = True
            _merge_peak_and_day_start(book.account(state.account_id), state)
            continue
        known += restore_account(book, state, now_ms, max_age_ms)
        if seq is not None:
            seqs[state.account_id] = seq
    refused_marks: list[str] = []
    valid: list[MarkState] = []
    for m in marks:
        problem = mark_problem(m)
        if problem is not None:
            refused_marks.append(f"mark {m.symbol!r}: {problem}")
        elif m.symbol not in book.marks and len(book.marks) + len(valid) >= max_symbols:
            refused_marks.append(f"mark {m.symbol!r}: beyond the limit of {max_symbols} symbols")
        else:
            valid.append(m)
    restore_marks(book, valid)
    replay_from = None if from_start or not seqs else min(seqs.values()) + 1
    return RestoreReport(
        restored,
        known,
        len(valid),
        refused_accounts,
        refused_marks,
        refused_seqs,
        seqs,
        replay_from,
    )


def restore_account(book: AccountBook, state: AccountState, now_ms: int, max_age_ms: int) -> bool:
    """Put a stored account into the book; True when it is restored as known.

    An account the book already has (an event arrived first) keeps its book state, but takes
    the stored peak when higher and the stored day start when it is for the same trading day.
    The state must have been validated (:func:`account_problem`; :func:`restore` does that).
    """
    fresh = state.known and now_ms - state.saved_ms <= max_age_ms
    existing = book.accounts.get(state.account_id)
    if existing is not None:
        _merge_peak_and_day_start(existing, state)
        restore_strategies(existing, state.strategies)
        return existing.known
    acct = book.account(state.account_id)
    acct.balance = state.balance
    acct.realized_pnl = state.realized_pnl
    acct.pnl_ms = state.pnl_ms
    acct.known = fresh
    acct.balance_known = fresh and state.balance_known
    for p in state.positions:
        acct.positions[p.symbol] = Position(
            p.symbol, p.quantity, p.entry_price, p.snapshot_ms, p.updated_ms
        )
    acct.peak_equity = state.peak_equity
    acct.day_start_equity = state.day_start_equity
    acct.trading_day = state.trading_day
    restore_strategies(acct, state.strategies)
    return fresh


def _merge_peak_and_day_start(acct: Account, state: AccountState) -> None:
    if state.peak_equity is not None and (
        acct.peak_equity is None or state.peak_equity > acct.peak_equity
    ):
        acct.peak_equity = state.peak_equity
    if state.day_start_equity is not None and (
        acct.trading_day is None or acct.trading_day == state.trading_day
    ):
        acct.day_start_equity = state.day_start_equity
        acct.trading_day = state.trading_day


def restore_marks(book: AccountBook, marks: list[MarkState]) -> None:
    """Put stored marks into the book unless a newer one was received since.

    The marks must have been validated (:func:`mark_problem`; :func:`restore` does that).
    """
    for m in marks:
        held = book.marks.get(m.symbol)
        if held is None or held.received_ms < m.received_ms:
            book.marks[m.symbol] = Mark(m.price, m.received_ms, m.timestamp)
