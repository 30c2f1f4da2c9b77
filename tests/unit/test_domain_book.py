"""The account book: positions.update, fills.confirmed and pnl.update."""

from __future__ import annotations

import pytest

from risk_worker.domain.book import AccountBook
from risk_worker.domain.book_events import Fill, PnlSnapshot, PositionSnapshot
from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.types import ApplyResult, Side

ACCT = "acct-1"
SYM = "BTCUSDT"


def snapshot(quantity: float, entry: float, ts: int, symbol: str = SYM) -> PositionSnapshot:
    return PositionSnapshot(ACCT, symbol, quantity, entry, ts)


def fill(
    fill_id: str,
    side: Side,
    quantity: float,
    price: float,
    ts: int,
    fee: float = 0.0,
    order_id: str = "",
) -> Fill:
    return Fill(fill_id, order_id, ACCT, SYM, side, quantity, price, fee, ts)


def pnl(balance: float | None, equity: float | None, ts: int, realized=None) -> PnlSnapshot:
    return PnlSnapshot(ACCT, balance, equity, realized, ts)


def reservation(order_id: str, signed_qty: float) -> PendingOrder:
    return PendingOrder(order_id, SYM, signed_qty, abs(signed_qty), 100.0, 0.1, 10**15)


# positions.update


@pytest.mark.parametrize(
    ("first", "second", "expected_result", "expected_qty", "expected_entry"),
    [
        ((1.0, 100.0, 1_000), (2.0, 110.0, 2_000), ApplyResult.APPLIED, 2.0, 110.0),
        ((1.0, 100.0, 1_000), (-3.0, 90.0, 1_000), ApplyResult.APPLIED, -3.0, 90.0),  # same ts
        ((1.0, 100.0, 2_000), (5.0, 120.0, 1_999), ApplyResult.STALE, 1.0, 100.0),
        ((1.0, 100.0, 1_000), (0.0, 120.0, 3_000), ApplyResult.APPLIED, 0.0, 0.0),  # flat
    ],
)
def test_apply_position_when_second_snapshot_then_replaces_unless_older(
    first, second, expected_result, expected_qty, expected_entry
):
    book = AccountBook()
    assert book.apply_position(snapshot(*first)) is ApplyResult.APPLIED
    assert book.apply_position(snapshot(*second)) is expected_result
    pos = book.accounts[ACCT].positions[SYM]
    assert pos.quantity == pytest.approx(expected_qty)
    assert pos.entry_price == pytest.approx(expected_entry)


def test_apply_position_when_first_seen_then_account_becomes_known():
    book = AccountBook()
    book.apply_position(snapshot(1.0, 100.0, 1_000))
    assert book.accounts[ACCT].known is True
    assert book.accounts[ACCT].positions[SYM].snapshot_ms == 1_000


# fills.confirmed


@pytest.mark.parametrize(
    ("snap", "fill_args", "expected_qty", "expected_entry", "expected_balance"),
    [
        # open from flat (no snapshot): fee 2 debited
        (None, (Side.BUY, 2.0, 100.0, 2.0), 2.0, 100.0, 998.0),
        # increase: long 1 @ 100 + buy 1 @ 120 → 2 @ 110, fee 1
        ((1.0, 100.0), (Side.BUY, 1.0, 120.0, 1.0), 2.0, 110.0, 999.0),
        # reduce long: realized (130 - 100) × 1 = 30, fee 0.5
        ((3.0, 100.0), (Side.SELL, 1.0, 130.0, 0.5), 2.0, 100.0, 1029.5),
        # reduce short: realized (200 - 150) × 2 = 100
        ((-4.0, 200.0), (Side.BUY, 2.0, 150.0, 0.0), -2.0, 200.0, 1100.0),
        # close long at a loss: (90 - 100) × 2 = -20, fee 1
        ((2.0, 100.0), (Side.SELL, 2.0, 90.0, 1.0), 0.0, 0.0, 979.0),
        # flip: long 1 @ 100, sell 3 @ 110 → +10 realized, short 2 @ 110
        ((1.0, 100.0), (Side.SELL, 3.0, 110.0, 0.0), -2.0, 110.0, 1010.0),
    ],
)
def test_apply_fill_when_newer_than_snapshot_then_position_and_balance_follow(
    snap, fill_args, expected_qty, expected_entry, expected_balance
):
    book = AccountBook()
    book.apply_pnl(pnl(1000.0, None, 1))
    if snap is not None:
        book.apply_position(snapshot(snap[0], snap[1], 1_000))
    side, qty, price, fee = fill_args
    assert book.apply_fill(fill("f1", side, qty, price, 2_000, fee)) is ApplyResult.APPLIED
    acct = book.accounts[ACCT]
    pos = acct.positions[SYM]
    assert pos.quantity == pytest.approx(expected_qty)
    assert pos.entry_price == pytest.approx(expected_entry)
    assert acct.balance == pytest.approx(expected_balance)


@pytest.mark.parametrize("fill_ts", [999, 1_000])
def test_apply_fill_when_not_newer_than_snapshot_then_stale_and_unchanged(fill_ts):
    book = AccountBook()
    book.apply_pnl(pnl(1000.0, None, 1))
    book.apply_position(snapshot(1.0, 100.0, 1_000))
    result = book.apply_fill(fill("f1", Side.BUY, 1.0, 200.0, fill_ts, fee=5.0))
    assert result is ApplyResult.STALE
    acct = book.accounts[ACCT]
    assert acct.positions[SYM].quantity == 1.0
    assert acct.positions[SYM].entry_price == 100.0
    assert acct.balance == 1000.0


def test_apply_fill_when_fill_id_repeated_then_applied_once():
    book = AccountBook()
    book.apply_pnl(pnl(1000.0, None, 1))
    assert book.apply_fill(fill("f1", Side.BUY, 1.0, 100.0, 10, fee=1.0)) is ApplyResult.APPLIED
    assert book.apply_fill(fill("f1", Side.BUY, 1.0, 100.0, 11, fee=1.0)) is ApplyResult.DUPLICATE
    acct = book.accounts[ACCT]
    assert acct.positions[SYM].quantity == 1.0
    assert acct.balance == pytest.approx(999.0)


def test_apply_fill_when_realized_then_accumulates_realized_pnl():
    book = AccountBook()
    book.apply_pnl(pnl(1000.0, None, 1, realized=50.0))
    book.apply_fill(fill("f1", Side.BUY, 2.0, 100.0, 10))
    book.apply_fill(fill("f2", Side.SELL, 1.0, 125.0, 11, fee=3.0))
    acct = book.accounts[ACCT]
    assert acct.realized_pnl == pytest.approx(75.0)  # fees are not realized PnL
    assert acct.balance == pytest.approx(1022.0)


@pytest.mark.parametrize(
    ("fills", "expected_pending_qty"),
    [
        ([("f1", 1.0)], 2.0),  # partial fill shrinks the reservation
        ([("f1", 1.0), ("f2", 2.0)], None),  # fully filled: removed
        ([("f1", 1.0), ("f1", 1.0)], 2.0),  # duplicate fill consumes once
    ],
)
def test_apply_fill_when_order_id_reserved_then_consumes_reservation(fills, expected_pending_qty):
    book = AccountBook()
    book.apply_pnl(pnl(1000.0, None, 1))
    acct = book.accounts[ACCT]
    acct.pending.add(reservation("o1", 3.0))
    for i, (fill_id, qty) in enumerate(fills):
        book.apply_fill(fill(fill_id, Side.BUY, qty, 100.0, 10 + i, order_id="o1"))
    if expected_pending_qty is None:
        assert "o1" not in acct.pending
    else:
        assert acct.pending.sides(SYM).buy_qty == pytest.approx(expected_pending_qty)


def test_apply_fill_when_account_never_seen_then_account_stays_unknown():
    book = AccountBook()
    book.apply_fill(fill("f1", Side.BUY, 1.0, 100.0, 10))
    assert book.accounts[ACCT].known is False


def test_apply_position_when_stale_for_fill_created_position_then_account_is_seen():
    # A positions.update was received for the account, so it is no longer "never seen",
    # even though the snapshot itself is older than a fill already applied.
    book = AccountBook()
    book.apply_fill(fill("f1", Side.BUY, 1.0, 100.0, 2_000))
    assert book.apply_position(snapshot(0.5, 100.0, 1_000)) is ApplyResult.STALE
    assert book.accounts[ACCT].known is True


# pnl.update


@pytest.mark.parametrize(
    ("balance", "equity", "expected_balance"),
    [
        (5_000.0, None, 5_000.0),
        (5_000.0, 9_999.0, 5_000.0),  # balance is authoritative
        # equity only: unrealized = 2 × (120 - 100) = 40 → balance = 6040 - 40
        (None, 6_040.0, 6_000.0),
        (None, None, 1_000.0),  # neither: balance untouched
    ],
)
def test_apply_pnl_when_balance_or_equity_given_then_balance_set(balance, equity, expected_balance):
    book = AccountBook()
    book.apply_pnl(pnl(1_000.0, None, 1))
    book.apply_position(snapshot(2.0, 100.0, 1))
    book.set_mark(SYM, 120.0, timestamp=5, now_ms=5)
    assert book.apply_pnl(pnl(balance, equity, 10)) is ApplyResult.APPLIED
    assert book.accounts[ACCT].balance == pytest.approx(expected_balance)


@pytest.mark.parametrize(
    ("second_ts", "expected_result", "expected_balance"),
    [(9, ApplyResult.STALE, 1_000.0), (10, ApplyResult.APPLIED, 2_000.0)],
)
def test_apply_pnl_when_older_than_last_then_stale(second_ts, expected_result, expected_balance):
    book = AccountBook()
    book.apply_pnl(pnl(1_000.0, None, 10))
    assert book.apply_pnl(pnl(2_000.0, None, second_ts)) is expected_result
    assert book.accounts[ACCT].balance == expected_balance


def test_apply_pnl_when_first_seen_then_account_known_and_realized_set():
    book = AccountBook()
    book.apply_pnl(pnl(1_000.0, None, 10, realized=12.5))
    assert book.accounts[ACCT].known is True
    assert book.accounts[ACCT].realized_pnl == 12.5


def test_unrealized_pnl_when_no_mark_then_valued_at_entry():
    book = AccountBook()
    book.apply_position(snapshot(2.0, 100.0, 1))
    book.apply_position(snapshot(-1.0, 50.0, 1, symbol="ETHUSDT"))
    book.set_mark("ETHUSDT", 40.0, timestamp=1, now_ms=1)
    # BTC unmarked → 0; ETH short 1: -1 × (40 - 50) = 10
    assert book.unrealized_pnl(book.accounts[ACCT]) == pytest.approx(10.0)
