"""Batch checks (issue 13, item 4): in order, earlier orders reserved, all-or-none rollback."""

from __future__ import annotations

import pytest

from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Order
from risk_worker.domain.policies import Policy, default_policies
from risk_worker.domain.types import DenyReason, Metric, Operator, PolicyType, Side
from tests.decision_kit import ACCT, NOW, make_engine, order

GROSS_50K = Policy(
    "id-gross", "Gross Cap", PolicyType.HARD, Metric.GROSS_EXPOSURE, Operator.LTE, 50_000.0
)


def engine_with_cap() -> RiskEngine:
    """100,000 of equity, BTC at 1,000, gross exposure capped at 50,000."""
    return make_engine(balance=100_000.0, mark=1_000.0, policies=[*default_policies(), GROSS_50K])


def basket() -> list[Order]:
    """30 + 15 + 10 BTC at 1,000: each fits alone, the third not after the first two."""
    return [
        order(Side.BUY, 30.0, order_id="b1"),
        order(Side.BUY, 15.0, order_id="b2"),
        order(Side.BUY, 10.0, order_id="b3"),
    ]


def test_batch_when_later_order_fits_only_without_earlier_then_it_alone_denied() -> None:
    engine = engine_with_cap()
    outcome = engine.check_batch(basket(), NOW, True, all_or_none=False)
    assert [d.approved for d in outcome.decisions] == [True, True, False]
    assert outcome.decisions[2].reason is DenyReason.POLICY_VIOLATION
    assert outcome.approved is False
    pending = engine.book.accounts[ACCT].pending
    assert ("b1" in pending, "b2" in pending, "b3" in pending) == (True, True, False)


def test_batch_when_all_or_none_and_one_denied_then_all_denied_and_nothing_reserved() -> None:
    engine = engine_with_cap()
    outcome = engine.check_batch(basket(), NOW, True, all_or_none=True)
    reasons = [d.reason for d in outcome.decisions]
    assert reasons == [
        DenyReason.BATCH_DENIED,
        DenyReason.BATCH_DENIED,
        DenyReason.POLICY_VIOLATION,
    ]
    assert "order b3 was policy_violation" in outcome.decisions[0].message
    assert outcome.approved is False
    assert len(engine.book.accounts[ACCT].pending) == 0
    single = engine.check(order(Side.BUY, 45.0, order_id="b4"), NOW, True)
    assert single.approved is True  # the rolled-back headroom is free again


def test_batch_when_all_or_none_and_every_order_fits_then_all_reserved() -> None:
    engine = engine_with_cap()
    outcome = engine.check_batch(basket()[:2], NOW, True, all_or_none=True)
    assert outcome.approved is True
    assert len(engine.book.accounts[ACCT].pending) == 2


def test_batch_when_rolled_back_then_a_replaced_reservation_is_put_back() -> None:
    engine = engine_with_cap()
    assert engine.check(order(Side.BUY, 5.0, order_id="b1"), NOW, True).approved
    before = engine.book.accounts[ACCT].pending.get("b1")
    recheck = [order(Side.BUY, 5.0, order_id="b1", dry_run=False), *basket()[1:]]
    engine.check_batch([*recheck, order(Side.BUY, 40.0, order_id="b9")], NOW, True, True)
    assert engine.book.accounts[ACCT].pending.get("b1") is before
    assert len(engine.book.accounts[ACCT].pending) == 1


def test_batch_when_orders_of_two_accounts_then_value_error() -> None:
    engine = engine_with_cap()
    one = order(Side.BUY, 1.0, order_id="x")
    other = Order(
        "x", "a2", one.symbol, one.side, 1.0, one.price, one.order_type, timestamp=one.timestamp
    )
    with pytest.raises(ValueError, match="same account"):
        engine.check_batch([order(Side.BUY, 1.0), other], NOW, True, False)
    with pytest.raises(ValueError, match="at least one"):
        engine.check_batch([], NOW, True, False)
