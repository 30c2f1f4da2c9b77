"""A compact check's metrics (``compute_metrics(..., notionals=False)``): every field as the full
metrics' to the bit, and the notional summary reads as the per-symbol dict (the largest, the
order's symbol after the fill), on random books with reservations, missing and stale marks,
flat positions and ties; a read it cannot answer raises instead of guessing."""

from __future__ import annotations

import random

import pytest

from risk_worker.domain.metrics import compute_metrics, simulate_fill
from risk_worker.domain.notional_summary import NotionalSummary
from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.readings import CONCENTRATION_AT, NOTIONAL_AT, symbol_reading
from risk_worker.domain.risk_metrics import METRICS_FIELDS, AccountMetrics
from tests.metrics_kit import ACCT, CONFIG, NOW, build_book

SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "BNB", "TRX")
CASES = 400
CHECKED = "checked"
"""The order being checked: its own reservation (when there is one) is left out."""


def _random_book(rng: random.Random):  # type: ignore[no-untyped-def]
    same = rng.random() < 0.3  # every position the same size and price: ties for the largest
    positions = []
    for symbol in rng.sample(SYMBOLS, rng.randint(0, len(SYMBOLS))):
        qty = 0.0 if rng.random() < 0.15 else rng.choice((-1.0, 1.0)) * rng.uniform(0.01, 50.0)
        positions.append((symbol, 2.0 if same and qty else qty, rng.uniform(1.0, 500.0)))
    marks = []
    for symbol in SYMBOLS:
        if rng.random() < 0.8:
            received = NOW - (60_000 if rng.random() < 0.15 else 1_000)
            marks.append((symbol, 100.0 if same else rng.uniform(1.0, 500.0), received))
    pending = []
    for n in range(rng.choice((0, 0, 1, 3, 6))):
        signed = rng.choice((-1.0, 1.0)) * rng.uniform(0.01, 20.0)
        pending.append(
            PendingOrder(
                CHECKED if n == 0 and rng.random() < 0.3 else f"o{n}",
                rng.choice(SYMBOLS),
                signed,
                abs(signed) * rng.choice((0.0, 0.5, 1.0)),
                rng.uniform(1.0, 500.0),
                rng.choice((0.05, 0.1, 0.2)),
                NOW + (60_000 if rng.random() < 0.85 else -1),  # some have expired
            )
        )
    return build_book(
        balance=rng.uniform(-1_000.0, 50_000.0),
        positions=tuple(positions),
        marks=tuple(marks),
        pending=tuple(pending),
    )


def _largest(held: dict[str, float]) -> float:
    """The largest notional as ``symbol_reading`` folds the dict (from 0.0)."""
    return symbol_reading(NOTIONAL_AT, held, 1.0, None)


def _same_but_the_notionals(full: AccountMetrics, compact: AccountMetrics) -> None:
    """Every field but the dict and the summary equal, to the bit (repr shows -0.0 and NaN)."""
    for name in METRICS_FIELDS:
        if name not in {"position_notional", "notional_summary"}:
            assert repr(getattr(compact, name)) == repr(getattr(full, name)), name
    held = full.position_notional
    summary = compact.notional_summary
    assert held is not None and summary is not None
    assert compact.position_notional is None and full.notional_summary is None
    assert compact.open_positions == len(held)
    assert summary.at(None) == _largest(held)
    for slot in (NOTIONAL_AT, CONCENTRATION_AT):
        assert repr(symbol_reading(slot, None, compact.equity, None, summary)) == repr(
            symbol_reading(slot, held, full.equity, None)
        )


@pytest.mark.parametrize("seed", range(4))
def test_compact_metrics_when_compared_with_full_then_summary_reads_as_the_dict(seed: int):
    rng = random.Random(seed)
    posts = 0
    for _ in range(CASES // 4):
        book = _random_book(rng)
        account = book.accounts[ACCT]
        full = compute_metrics(account, book.marks, CONFIG, NOW, CHECKED)
        compact = compute_metrics(account, book.marks, CONFIG, NOW, CHECKED, notionals=False)
        _same_but_the_notionals(full, compact)
        for _ in range(4):
            symbol = rng.choice(SYMBOLS)
            held = account.positions.get(symbol)
            qty = rng.uniform(0.01, 30.0) * rng.choice((-1.0, 1.0))
            if held is not None and held.quantity and rng.random() < 0.3:
                qty = -held.quantity  # closes the position (dropped unless reserved)
            price = rng.uniform(1.0, 500.0)
            args = (account, book.marks, CONFIG, symbol, qty, price, NOW, CHECKED)
            full_post = simulate_fill(full, *args)
            compact_post = simulate_fill(compact, *args)
            _same_but_the_notionals(full_post, compact_post)
            post_held = full_post.position_notional
            post_summary = compact_post.notional_summary
            assert post_held is not None and post_summary is not None
            assert post_summary.at(symbol) == post_held.get(symbol, 0.0)
            assert repr(compact_post.notional(symbol)) == repr(full_post.notional(symbol))
            posts += 1
    assert posts == CASES


def test_compact_metrics_when_read_beyond_the_summary_then_lookup_error():
    book = build_book(positions=(("BTCUSDT", 2.0, 100.0), ("ETHUSDT", -3.0, 50.0)))
    account = book.accounts[ACCT]
    pre = compute_metrics(account, book.marks, CONFIG, NOW, notionals=False)
    with pytest.raises(LookupError):
        pre.held_notionals()
    with pytest.raises(LookupError):
        pre.concentrations()
    with pytest.raises(LookupError):  # pre-trade: no symbol can be read
        pre.concentration("BTCUSDT")
    post = simulate_fill(pre, account, book.marks, CONFIG, "BTCUSDT", 1.0, 110.0, NOW)
    assert post.notional("BTCUSDT") == 330.0 and post.notional() == 330.0
    with pytest.raises(LookupError):  # another symbol than the order's
        post.notional("ETHUSDT")
    with pytest.raises(LookupError):
        symbol_reading(NOTIONAL_AT, None, post.equity, "ETHUSDT", post.notional_summary)
    with pytest.raises(LookupError):  # a post-trade summary does not move again
        simulate_fill(post, account, book.marks, CONFIG, "ETHUSDT", 1.0, 40.0, NOW)
    bare = AccountMetrics(1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, None, (), 1.0, 1.0)
    with pytest.raises(LookupError):  # neither the dict nor a summary
        bare.notional()
    with pytest.raises(LookupError):
        simulate_fill(bare, account, book.marks, CONFIG, "BTCUSDT", 1.0, 110.0, NOW)


def test_summary_when_symbols_tie_then_the_other_largest_survives_a_close():
    summary = NotionalSummary(0.0, None, 0.0)
    for symbol, notional in (("A", 5.0), ("B", 5.0), ("C", 1.0), ("D", float("nan"))):
        summary.fold(symbol, notional)
    assert (summary.largest, summary.largest_symbol, summary.second) == (5.0, "A", 5.0)
    assert summary.after("A", 0.0, kept=False).at(None) == 5.0  # B is still there
    assert summary.after("B", 7.0, kept=True).at(None) == 7.0
    assert summary.after("C", 2.0, kept=True).at("C") == 2.0
    assert summary.after("D", 1.0, kept=True).at(None) == 5.0
