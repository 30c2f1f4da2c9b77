"""Export and restore of account state and marks: what a restarted worker starts from."""

from __future__ import annotations

import math

import msgspec
import pytest

from risk_worker.domain.book import AccountBook
from risk_worker.domain.book_events import Fill, PnlSnapshot, PositionSnapshot
from risk_worker.domain.equity_window import observe_equity
from risk_worker.domain.persistence import (
    AccountState,
    MarkState,
    PositionState,
    account_problem,
    export_account,
    export_marks,
    restore,
    restore_account,
    restore_marks,
)
from risk_worker.domain.strategy_book import observe_strategy
from risk_worker.domain.types import MS_PER_DAY, Side

ACCT = "acct-1"
NOW = 1_700_000_000_000
DAY = NOW // MS_PER_DAY
MAX_AGE = 60_000


def live_book() -> AccountBook:
    """A known account: balance, a long and a flat position, peak and day start, two marks."""
    book = AccountBook()
    book.apply_pnl(PnlSnapshot(ACCT, 10_000.0, None, 250.0, NOW - 9_000))
    book.apply_position(PositionSnapshot(ACCT, "BTCUSDT", 0.5, 40_000.0, NOW - 8_000))
    book.apply_position(PositionSnapshot(ACCT, "ETHUSDT", 2.0, 2_000.0, NOW - 7_000))
    book.apply_fill(Fill("f1", "o1", ACCT, "ETHUSDT", Side.SELL, 2.0, 2_100.0, 1.0, NOW - 6_000))
    book.set_mark("BTCUSDT", 41_000.0, NOW - 1_100, NOW - 1_000)
    book.set_mark("ETHUSDT", 2_050.0, NOW - 600, NOW - 500)
    acct = book.accounts[ACCT]
    observe_equity(acct, 12_000.0, NOW - 3_000)
    observe_equity(acct, 10_500.0, NOW - 2_000)
    return book


def test_restore_when_exported_state_is_fresh_then_book_equals_the_original() -> None:
    original = live_book()
    state = export_account(original.accounts[ACCT], NOW)
    restored = AccountBook()

    assert restore_account(restored, state, NOW + 1_000, MAX_AGE) is True
    restore_marks(restored, export_marks(original))

    before, after = original.accounts[ACCT], restored.accounts[ACCT]
    assert after.known is True
    assert (after.balance, after.realized_pnl, after.pnl_ms) == (
        before.balance,
        before.realized_pnl,
        before.pnl_ms,
    )
    assert after.positions.keys() == {"BTCUSDT", "ETHUSDT"}  # flat ETHUSDT kept for its times
    for symbol, pos in before.positions.items():
        got = after.positions[symbol]
        assert (got.quantity, got.entry_price, got.snapshot_ms, got.updated_ms) == (
            pos.quantity,
            pos.entry_price,
            pos.snapshot_ms,
            pos.updated_ms,
        )
    assert (after.peak_equity, after.day_start_equity, after.trading_day) == (
        12_000.0,
        12_000.0,
        DAY,
    )
    assert restored.marks == original.marks


@pytest.mark.parametrize(
    ("age_ms", "known_when_saved", "expected_known"),
    [
        (0, True, True),
        (MAX_AGE, True, True),
        (MAX_AGE + 1, True, False),
        (0, False, False),
    ],
)
def test_restore_when_state_is_old_or_unknown_then_not_known_but_peak_and_day_start_kept(
    age_ms: int, known_when_saved: bool, expected_known: bool
) -> None:
    state = export_account(live_book().accounts[ACCT], NOW)
    if not known_when_saved:
        state = msgspec.structs.replace(state, known=False)
    book = AccountBook()

    assert restore_account(book, state, NOW + age_ms, MAX_AGE) is expected_known

    acct = book.accounts[ACCT]
    assert acct.known is expected_known
    assert (acct.peak_equity, acct.day_start_equity, acct.trading_day) == (12_000.0, 12_000.0, DAY)
    assert acct.balance == state.balance


@pytest.mark.parametrize(
    ("book_peak", "stored_peak", "expected_peak"),
    [
        (11_000.0, 12_000.0, 12_000.0),  # stored higher: a restart never lowers the peak
        (13_000.0, 12_000.0, 13_000.0),  # the book saw a higher one since
        (None, 12_000.0, 12_000.0),
        (11_000.0, None, 11_000.0),
    ],
)
def test_restore_when_account_already_in_book_then_higher_peak_wins(
    book_peak: float | None, stored_peak: float | None, expected_peak: float | None
) -> None:
    state = export_account(live_book().accounts[ACCT], NOW)
    state = msgspec.structs.replace(state, peak_equity=stored_peak)
    book = AccountBook()
    book.apply_pnl(PnlSnapshot(ACCT, 9_000.0, None, None, NOW + 500))  # an event came first
    book.accounts[ACCT].peak_equity = book_peak

    assert restore_account(book, state, NOW + 1_000, MAX_AGE) is True  # the book's own known

    acct = book.accounts[ACCT]
    assert acct.peak_equity == expected_peak
    assert acct.balance == 9_000.0  # the book's state is kept, not the stored one
    assert acct.positions == {}


@pytest.mark.parametrize(
    ("book_day", "book_day_start", "expected_day_start", "expected_day"),
    [
        (DAY, 10_000.0, 12_000.0, DAY),  # same UTC day: the stored day start wins
        (None, None, 12_000.0, DAY),  # not observed yet: the stored day start is taken
        (DAY + 1, 9_000.0, 9_000.0, DAY + 1),  # a new day began: the stored one is stale
    ],
)
def test_restore_when_account_already_in_book_then_day_start_of_the_same_day_is_taken(
    book_day: int | None,
    book_day_start: float | None,
    expected_day_start: float,
    expected_day: int,
) -> None:
    state = export_account(live_book().accounts[ACCT], NOW)
    book = AccountBook()
    acct = book.account(ACCT)
    acct.trading_day, acct.day_start_equity = book_day, book_day_start

    assert restore_account(book, state, NOW, MAX_AGE) is False  # referenced, never seen

    assert (acct.day_start_equity, acct.trading_day) == (expected_day_start, expected_day)


@pytest.mark.parametrize(
    ("held_received_ms", "stored_received_ms", "expected_price"),
    [
        (None, NOW, 2.0),
        (NOW - 1, NOW, 2.0),  # the stored mark is newer
        (NOW, NOW, 1.0),  # same receive time: the held one stays
        (NOW + 1, NOW, 1.0),  # a mark arrived after the snapshot was taken
    ],
)
def test_restore_marks_when_a_mark_is_held_then_the_newer_received_wins(
    held_received_ms: int | None, stored_received_ms: int, expected_price: float
) -> None:
    book = AccountBook()
    if held_received_ms is not None:
        book.set_mark("BTCUSDT", 1.0, held_received_ms - 10, held_received_ms)

    restore_marks(book, [MarkState("BTCUSDT", 2.0, stored_received_ms, stored_received_ms - 10)])

    assert book.marks["BTCUSDT"].price == expected_price


# -- validation of what is restored (issue 10 items 4-5) ---------------------------------------


def stored(**changes: object) -> AccountState:
    """A valid, fresh stored account (balance 10,000, long 0.5 BTCUSDT) with ``changes``."""
    state = export_account(live_book().accounts[ACCT], NOW)
    return msgspec.structs.replace(state, **changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"peak_equity": math.inf},
        {"peak_equity": math.nan},
        {"day_start_equity": -math.inf},
        {"peak_equity": 1e31},
        {"balance": 1e308},
        {"balance": -1e16},
        {"realized_pnl": math.inf},
        {"account_id": "bad id"},
        {"trading_day": 10**9},
        {"saved_ms": -1},
        {"positions": [PositionState("BTCUSDT", 1e308, 40_000.0, NOW, NOW)]},
        {"positions": [PositionState("BTCUSDT", 0.5, 5e-324, NOW, NOW)]},
        {"positions": [PositionState("BTCUSDT", 0.5, 0.0, NOW, NOW)]},
        {"positions": [PositionState("BTC USDT", 0.5, 40_000.0, NOW, NOW)]},
    ],
    ids=lambda c: "-".join(f"{k}={v!r}"[:40] for k, v in c.items()),
)
def test_restore_when_stored_account_invalid_then_refused_and_book_untouched(
    changes: dict[str, object],
) -> None:
    state = stored(**changes)
    book = AccountBook()
    report = restore(book, [state], [], NOW + 1_000, MAX_AGE, 10_000)
    assert account_problem(state) is not None
    assert (report.accounts, report.known, len(report.refused_accounts)) == (0, 0, 1)
    assert book.accounts == {}


def test_restore_when_an_existing_account_meets_an_infinite_stored_peak_then_peak_kept() -> None:
    book = live_book()
    peak = book.accounts[ACCT].peak_equity
    report = restore(book, [stored(peak_equity=math.inf)], [], NOW, MAX_AGE, 10_000)
    assert len(report.refused_accounts) == 1
    assert book.accounts[ACCT].peak_equity == peak


@pytest.mark.parametrize(
    "mark",
    [
        MarkState("BTCUSDT", 1e308, NOW, NOW),
        MarkState("BTCUSDT", math.inf, NOW, NOW),
        MarkState("BTCUSDT", 5e-324, NOW, NOW),
        MarkState("BTC*", 1.0, NOW, NOW),
        MarkState("BTCUSDT", 1.0, -5, NOW),
    ],
)
def test_restore_when_stored_mark_invalid_then_refused(mark: MarkState) -> None:
    book = AccountBook()
    report = restore(book, [], [mark], NOW, MAX_AGE, 10_000)
    assert (report.marks, len(report.refused_marks)) == (0, 1)
    assert book.marks == {}


def test_restore_when_marks_exceed_the_symbol_limit_then_the_rest_refused() -> None:
    book = AccountBook()
    marks = [MarkState(f"S{i}", 1.0, NOW, NOW) for i in range(5)]
    report = restore(book, [], marks, NOW, MAX_AGE, 3)
    assert (report.marks, len(report.refused_marks)) == (3, 2)
    assert set(book.marks) == {"S0", "S1", "S2"}


def test_restore_when_state_valid_then_restored_as_before() -> None:
    report = restore(AccountBook(), [stored()], [], NOW + 1_000, MAX_AGE, 10_000)
    assert (report.accounts, report.known, report.refused_accounts) == (1, 1, [])


# -- strategy books (issue 13 §2) -----------------------------------------------------------


def strategy_book_state() -> AccountState:
    """A stored account with one strategy book: a fill, an observed peak and day start."""
    book = live_book()
    book.apply_fill(
        Fill("f9", "o9", ACCT, "BTCUSDT", Side.BUY, 0.1, 40_500.0, 2.0, NOW - 500, "momo")
    )
    observe_strategy(
        book.accounts[ACCT].strategies["momo"], 50.0, 12_000.0, NOW - 400, lambda t: t // MS_PER_DAY
    )
    return export_account(book.accounts[ACCT], NOW)


def test_restore_when_strategy_books_stored_then_positions_pnl_peak_and_day_start_back() -> None:
    state = msgspec.json.decode(msgspec.json.encode(strategy_book_state()), type=AccountState)
    book = AccountBook()
    report = restore(book, [state], [], NOW + 1_000, MAX_AGE, 10_000)
    assert report.refused_accounts == []
    momo = book.accounts[ACCT].strategies["momo"]
    assert momo.positions["BTCUSDT"].quantity == pytest.approx(0.1)
    assert (momo.realized_pnl, momo.fees) == (0.0, 2.0)
    assert (momo.peak_pnl, momo.equity_at_peak) == (50.0, 12_000.0)
    assert (momo.day_start_pnl, momo.trading_day) == (50.0, (NOW - 400) // MS_PER_DAY)


def test_restore_when_older_snapshot_has_no_strategies_then_restored_without() -> None:
    state = strategy_book_state()
    raw = msgspec.json.decode(msgspec.json.encode(state))
    del raw["strategies"]
    older = msgspec.convert(raw, AccountState)
    book = AccountBook()
    restore(book, [older], [], NOW + 1_000, MAX_AGE, 10_000)
    assert book.accounts[ACCT].strategies == {}


@pytest.mark.parametrize(
    "change",
    [
        {"peak_pnl": math.inf},
        {"peak_pnl": -1.0},
        {"equity_at_peak": math.nan},
        {"day_start_pnl": -math.inf},
        {"fees": 1e16},
        {"strategy_id": "bad id"},
        {"trading_day": 10**9},
    ],
    ids=lambda c: "-".join(f"{k}={v!r}" for k, v in c.items()),
)
def test_restore_when_a_stored_strategy_is_invalid_then_the_account_is_refused(
    change: dict[str, object],
) -> None:
    state = strategy_book_state()
    bad = msgspec.structs.replace(
        state, strategies=[msgspec.structs.replace(state.strategies[0], **change)]
    )
    book = AccountBook()
    report = restore(book, [bad], [], NOW + 1_000, MAX_AGE, 10_000)
    assert account_problem(bad) is not None
    assert len(report.refused_accounts) == 1 and book.accounts == {}
