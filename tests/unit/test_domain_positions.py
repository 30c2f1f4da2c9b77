"""Position keeping: fill_effect, strictly_reduces and risk_increasing_quantity."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from risk_worker.domain.positions import fill_effect, risk_increasing_quantity, strictly_reduces


class Effect(NamedTuple):
    """fill_effect's tuple, named for the assertions."""

    quantity: float
    entry_price: float
    realized_pnl: float


@pytest.mark.parametrize(
    ("quantity", "entry", "fill_qty", "price", "expected"),
    [
        # open long / open short from flat: entry = fill price, nothing realized
        (0.0, 0.0, 2.0, 100.0, (2.0, 100.0, 0.0)),
        (0.0, 0.0, -3.0, 50.0, (-3.0, 50.0, 0.0)),
        # a flat position keeps a stale entry price: it must not leak into the new entry
        (0.0, 999.0, 1.0, 10.0, (1.0, 10.0, 0.0)),
    ],
)
def test_fill_when_flat_then_opens_at_fill_price(quantity, entry, fill_qty, price, expected):
    effect = Effect(*fill_effect(quantity, entry, fill_qty, price))
    assert effect == pytest.approx(expected)


@pytest.mark.parametrize(
    ("quantity", "entry", "fill_qty", "price", "expected_qty", "expected_entry"),
    [
        # long 1 @ 100 + buy 3 @ 200 → 4 @ (100 + 600) / 4 = 175
        (1.0, 100.0, 3.0, 200.0, 4.0, 175.0),
        # short 2 @ 50 + sell 2 @ 40 → -4 @ 45
        (-2.0, 50.0, -2.0, 40.0, -4.0, 45.0),
        # long 0.5 @ 30000 + buy 1.5 @ 31000 → 2 @ (15000 + 46500) / 2 = 30750
        (0.5, 30_000.0, 1.5, 31_000.0, 2.0, 30_750.0),
    ],
)
def test_fill_when_same_side_then_increases_with_quantity_weighted_entry(
    quantity, entry, fill_qty, price, expected_qty, expected_entry
):
    effect = Effect(*fill_effect(quantity, entry, fill_qty, price))
    assert effect.quantity == pytest.approx(expected_qty)
    assert effect.entry_price == pytest.approx(expected_entry)
    assert effect.realized_pnl == 0.0


@pytest.mark.parametrize(
    ("quantity", "entry", "fill_qty", "price", "expected_qty", "expected_realized"),
    [
        # long 4 @ 100, sell 1 @ 130 → realized +30, 3 left @ 100
        (4.0, 100.0, -1.0, 130.0, 3.0, 30.0),
        # long 4 @ 100, sell 1 @ 80 → realized -20
        (4.0, 100.0, -1.0, 80.0, 3.0, -20.0),
        # short 5 @ 200, buy 2 @ 150 → realized +100, -3 left @ 200
        (-5.0, 200.0, 2.0, 150.0, -3.0, 100.0),
        # short 5 @ 200, buy 2 @ 260 → realized -120
        (-5.0, 200.0, 2.0, 260.0, -3.0, -120.0),
    ],
)
def test_fill_when_opposite_and_smaller_then_reduces_and_realizes_keeping_entry(
    quantity, entry, fill_qty, price, expected_qty, expected_realized
):
    effect = Effect(*fill_effect(quantity, entry, fill_qty, price))
    assert effect.quantity == pytest.approx(expected_qty)
    assert effect.entry_price == pytest.approx(entry)
    assert effect.realized_pnl == pytest.approx(expected_realized)


@pytest.mark.parametrize(
    ("quantity", "entry", "fill_qty", "price", "expected_realized"),
    [
        (2.0, 100.0, -2.0, 110.0, 20.0),
        (-2.0, 100.0, 2.0, 110.0, -20.0),
        # float residue: 0.1 + 0.2 bought, 0.3 sold must end flat, not 5e-17
        (0.1 + 0.2, 100.0, -0.3, 100.0, 0.0),
    ],
)
def test_fill_when_opposite_and_equal_then_closes_flat_with_zero_entry(
    quantity, entry, fill_qty, price, expected_realized
):
    effect = Effect(*fill_effect(quantity, entry, fill_qty, price))
    assert effect.quantity == 0.0
    assert effect.entry_price == 0.0
    assert effect.realized_pnl == pytest.approx(expected_realized, abs=1e-9)


@pytest.mark.parametrize(
    ("quantity", "entry", "fill_qty", "price", "expected_qty", "expected_realized"),
    [
        # long 2 @ 100, sell 5 @ 120 → close 2 (+40), open short 3 @ 120
        (2.0, 100.0, -5.0, 120.0, -3.0, 40.0),
        # short 1 @ 50, buy 4 @ 60 → close 1 (-10), open long 3 @ 60
        (-1.0, 50.0, 4.0, 60.0, 3.0, -10.0),
    ],
)
def test_fill_when_opposite_and_larger_then_flips_at_fill_price(
    quantity, entry, fill_qty, price, expected_qty, expected_realized
):
    effect = Effect(*fill_effect(quantity, entry, fill_qty, price))
    assert effect.quantity == pytest.approx(expected_qty)
    assert effect.entry_price == pytest.approx(price)
    assert effect.realized_pnl == pytest.approx(expected_realized)


@pytest.mark.parametrize(
    ("quantity", "order_qty", "expected"),
    [
        (0.0, 1.0, False),  # flat: nothing to reduce
        (0.0, -1.0, False),
        (2.0, 1.0, False),  # same side adds
        (-2.0, -1.0, False),
        (2.0, -1.0, True),  # partial reduce
        (-2.0, 1.0, True),
        (2.0, -2.0, True),  # close counts
        (-2.0, 2.0, True),
        (2.0, -3.0, False),  # flip does not
        (-2.0, 3.0, False),
        (0.1 + 0.2, -0.3, True),  # float residue still closes
    ],
)
def test_strictly_reduces_when_order_against_position_then_true_only_without_flip(
    quantity, order_qty, expected
):
    assert strictly_reduces(quantity, order_qty) is expected


@pytest.mark.parametrize(
    ("quantity", "order_qty", "expected"),
    [
        (0.0, 2.0, 2.0),  # open
        (0.0, -2.0, 2.0),
        (1.0, 2.0, 2.0),  # add
        (-1.0, -2.0, 2.0),
        (3.0, -2.0, 0.0),  # reduce
        (3.0, -3.0, 0.0),  # close
        (3.0, -5.0, 2.0),  # flip: remainder counts
        (-3.0, 5.0, 2.0),
    ],
)
def test_risk_increasing_quantity_when_order_acts_then_counts_only_opened_exposure(
    quantity, order_qty, expected
):
    assert risk_increasing_quantity(quantity, order_qty) == pytest.approx(expected)
