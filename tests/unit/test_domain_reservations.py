"""Another instance's reservation counts against the account here too."""

from __future__ import annotations

from risk_worker.domain.book_events import PnlSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Order
from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.policies import default_policies
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.types import OrderType, Side

NOW = 1_700_000_000_000


def engine() -> RiskEngine:
    e = RiskEngine(RiskConfig(margin_rates={"BTCUSDT": 0.02}))
    e.load_policies(default_policies())
    e.apply_pnl(PnlSnapshot("A", 100_000.0, None, None, NOW))
    return e


def buy(order_id: str, qty: float) -> Order:
    return Order(order_id, "A", "BTCUSDT", Side.BUY, qty, 50_000.0, OrderType.LIMIT)


def test_check_when_remote_reservation_applied_then_headroom_shared() -> None:
    e = engine()
    assert e.check(buy("o1", 19.0), NOW, True).approved  # 950k of the 1M (10x) headroom
    other = engine()  # a second instance, told about the first one's reservation
    reservation = e.book.accounts["A"].pending
    assert len(reservation) == 1
    other.apply_reservation(
        "A", PendingOrder("o1", "BTCUSDT", 19.0, 19.0, 50_000.0, 0.02, NOW + 60_000)
    )
    decision = other.check(buy("o2", 2.0), NOW, True)
    assert decision.reason is not None and decision.reason.value == "policy_violation"
    assert other.check(buy("o3", 1.0), NOW, True).approved  # exactly at the limit


def test_check_when_approved_then_decision_carries_the_reservation_and_dry_run_none() -> None:
    e = engine()
    approved = e.check(buy("o1", 1.0), NOW, True)
    assert approved.reservation is not None
    assert (approved.reservation.order_id, approved.reservation.signed_qty) == ("o1", 1.0)
    dry = e.check(
        Order("o2", "A", "BTCUSDT", Side.BUY, 1.0, 50_000.0, OrderType.LIMIT, dry_run=True),
        NOW,
        True,
    )
    assert dry.approved and dry.reservation is None
