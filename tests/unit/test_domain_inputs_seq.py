"""The snapshot's ``inputs_seq`` (issue 14): validated like every stored value, and the replay
plan it gives a restart (where to start, what each account skips)."""

from __future__ import annotations

import msgspec
import pytest

from risk_worker.domain.book import AccountBook
from risk_worker.domain.book_events import PnlSnapshot, PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Order
from risk_worker.domain.persistence import (
    MAX_STREAM_SEQ,
    AccountState,
    export_account,
    inputs_seq_of,
    restore,
)
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.types import DenyReason, OrderType, Side

NOW = 1_700_000_000_000
MAX_AGE = 60_000


def stored(account_id: str, seq: object, balance: float = 10_000.0) -> AccountState:
    """A stored account: a balance, one position, a peak above it, and ``seq``."""
    book = AccountBook()
    book.apply_pnl(PnlSnapshot(account_id, balance, None, 0.0, NOW - 5_000))
    book.apply_position(PositionSnapshot(account_id, "BTCUSDT", 0.5, 40_000.0, NOW - 4_000))
    acct = book.accounts[account_id]
    acct.peak_equity = balance * 1.5
    state = export_account(acct, NOW)
    return msgspec.structs.replace(state, inputs_seq=seq)


@pytest.mark.parametrize(
    ("seq", "valid"),
    [
        *[(0, True), (7, True), (MAX_STREAM_SEQ, True), (-1, False), (MAX_STREAM_SEQ + 1, False)],
        *[("7", False), (7.0, False), (True, False), ([7], False), ({"seq": 7}, False)],
    ],
)
def test_inputs_seq_of_when_stored_value_then_only_integers_in_range_count(
    seq: object, valid: bool
) -> None:
    got, problem = inputs_seq_of(stored("a", seq), None)
    assert (got == seq, problem is None) == (valid, valid)


def test_inputs_seq_of_when_absent_or_beyond_the_stream_then_none() -> None:
    assert inputs_seq_of(stored("a", None), 10) == (None, None)
    got, problem = inputs_seq_of(stored("a", 11), 10)
    assert got is None and problem is not None and "beyond" in problem


def test_restore_when_every_account_has_a_seq_then_replay_after_the_lowest() -> None:
    book = AccountBook()
    r = restore(book, [stored("a", 40), stored("b", 55)], [], NOW, MAX_AGE, 100, last_seq=60)
    assert (r.replay_from, r.seqs, r.refused_seqs) == (41, {"a": 40, "b": 55}, [])
    assert book.accounts["a"].positions["BTCUSDT"].quantity == 0.5
    assert book.accounts["b"].known


def test_restore_when_one_seq_invalid_then_its_account_peak_only_and_replay_from_start() -> None:
    book = AccountBook()
    r = restore(book, [stored("a", 40), stored("b", "x")], [], NOW, MAX_AGE, 100, last_seq=60)
    assert r.replay_from is None and r.seqs == {"a": 40}
    assert len(r.refused_seqs) == 1 and "'b'" in r.refused_seqs[0]
    b = book.accounts["b"]
    assert (b.known, b.balance, b.positions, b.peak_equity) == (False, 0.0, {}, 15_000.0)
    assert book.accounts["a"].known  # the others are restored whole


def test_restore_when_an_account_is_refused_then_replay_from_the_stream_start() -> None:
    """A refused account (here a NaN balance) gets nothing from the store, so it must be
    rebuilt from all of its events, not from the other accounts' lowest sequence on."""
    bad = msgspec.structs.replace(stored("b", 50), balance=float("nan"))
    book = AccountBook()
    r = restore(book, [stored("a", 40), bad], [], NOW, MAX_AGE, 100, last_seq=60)
    assert len(r.refused_accounts) == 1 and "'b'" in r.refused_accounts[0]
    assert r.replay_from is None and r.seqs == {"a": 40}  # a still skips what it holds
    late = AccountBook()  # a late restore: the replay already ran, nothing to plan
    assert restore(late, [stored("a", 40), bad], [], NOW, MAX_AGE, 100).replay_from == 41


def test_restore_when_seq_absent_then_peak_only_and_without_a_stream_then_whole() -> None:
    replayed = AccountBook()
    r = restore(replayed, [stored("a", None)], [], NOW, MAX_AGE, 100, last_seq=0)
    assert r.replay_from is None and replayed.accounts["a"].positions == {}
    late = AccountBook()  # a late restore (no replay follows): restored whole, as before
    restore(late, [stored("a", None)], [], NOW, MAX_AGE, 100)
    assert late.accounts["a"].positions["BTCUSDT"].quantity == 0.5


def test_check_when_book_replaying_then_denied_book_replaying() -> None:
    engine = RiskEngine(RiskConfig())
    engine.book_replaying = True
    order = Order("o1", "a", "BTCUSDT", Side.BUY, 0.1, 40_000.0, OrderType.LIMIT)
    decision = engine.check(order, NOW, True)
    assert decision.reason is DenyReason.BOOK_REPLAYING
