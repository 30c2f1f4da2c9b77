"""Per-strategy books (issue 13, item 2): keeping them, their metrics, and the checks on them."""

from __future__ import annotations

import pytest

from risk_worker.domain.book_events import Fill, PnlSnapshot, PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Order
from risk_worker.domain.policies import Policy, PolicyError
from risk_worker.domain.policy_set import PolicySet
from risk_worker.domain.strategy_book import STRATEGIES_MAX
from risk_worker.domain.strategy_metrics import compute_strategy_metrics
from risk_worker.domain.types import (
    ApplyResult,
    DenyReason,
    Metric,
    Operator,
    OrderType,
    PolicyType,
    Scope,
    Side,
)
from tests.decision_kit import CONFIG, NOW

ACCT = "a1"
BTC, ETH = "BTCUSDT", "ETHUSDT"


def fill(
    fill_id: str,
    side: Side,
    qty: float,
    price: float,
    strategy: str | None,
    ts: int = NOW,
    fee: float = 0.0,
    symbol: str = BTC,
) -> Fill:
    return Fill(fill_id, "ord-" + fill_id, ACCT, symbol, side, qty, price, fee, ts, strategy)


def engine_with(policies: list[Policy], balance: float = 100_000.0) -> RiskEngine:
    engine = RiskEngine(CONFIG)
    engine.load_policies(policies)
    engine.apply_pnl(PnlSnapshot(ACCT, balance, None, None, 1))
    engine.set_mark(BTC, 1_000.0, NOW, NOW)
    engine.set_mark(ETH, 100.0, NOW, NOW)
    return engine


def buy(strategy: str | None, qty: float = 1.0, order_id: str = "o1", price: float = 1_000.0):
    return Order(
        order_id, ACCT, BTC, Side.BUY, qty, price, OrderType.LIMIT, strategy_id=strategy,
        timestamp=NOW,
    )  # fmt: skip


def strategy_policy(metric: Metric, threshold: float, scope_id: str | None = None, **kw) -> Policy:
    return Policy(
        f"id-{metric}",
        f"Strategy {metric}",
        kw.pop("type", PolicyType.HARD),
        metric,
        kw.pop("operator", Operator.LTE),
        threshold,
        Scope.STRATEGY,
        scope_id,
    )


def test_fill_with_strategy_moves_the_account_and_the_strategy_book():
    engine = engine_with([])
    assert engine.apply_fill(fill("f1", Side.BUY, 2.0, 1_000.0, "s1", fee=3.0)) == "applied"
    assert engine.apply_fill(fill("f2", Side.SELL, 1.0, 1_100.0, "s1", NOW + 1, fee=2.0)) == (
        ApplyResult.APPLIED
    )
    acct = engine.book.accounts[ACCT]
    assert acct.positions[BTC].quantity == 1.0
    book = acct.strategies["s1"]
    assert book.positions[BTC].quantity == 1.0
    assert book.positions[BTC].entry_price == 1_000.0
    assert book.realized_pnl == pytest.approx(100.0)
    assert book.fees == 5.0
    m = compute_strategy_metrics(acct, "s1", engine.book.marks, CONFIG, NOW, 100_000.0)
    assert m.realized_pnl == pytest.approx(95.0)  # after fees
    assert m.pnl == pytest.approx(95.0)  # mark 1,000 = entry
    assert m.gross_exposure == 1_000.0
    # a repeated fill id changes neither book
    assert engine.apply_fill(fill("f1", Side.BUY, 2.0, 1_000.0, "s1")) is ApplyResult.DUPLICATE
    assert book.positions[BTC].quantity == 1.0


def test_fill_without_strategy_keeps_todays_behaviour():
    engine = engine_with([])
    engine.apply_fill(fill("f1", Side.BUY, 2.0, 1_000.0, None))
    acct = engine.book.accounts[ACCT]
    assert acct.positions[BTC].quantity == 2.0
    assert acct.strategies == {}


def test_strategy_snapshot_replaces_only_the_strategy_position_and_makes_nothing_known():
    engine = RiskEngine(CONFIG)
    result = engine.apply_position(PositionSnapshot(ACCT, BTC, 3.0, 900.0, NOW, "s1"))
    assert result is ApplyResult.APPLIED
    acct = engine.book.accounts[ACCT]
    assert acct.known is False  # only the account's own events make it known
    assert acct.positions == {}
    assert acct.strategies["s1"].positions[BTC].quantity == 3.0
    older = PositionSnapshot(ACCT, BTC, 9.0, 900.0, NOW - 1, "s1")
    assert engine.apply_position(older) is ApplyResult.STALE
    # a fill not newer than the strategy's snapshot is in it already: the strategy keeps 3
    engine.apply_fill(fill("f1", Side.BUY, 1.0, 1_000.0, "s1", NOW))
    assert acct.strategies["s1"].positions[BTC].quantity == 3.0
    assert acct.positions[BTC].quantity == 1.0


def test_strategy_books_per_account_are_bounded():
    engine = engine_with([])
    for k in range(STRATEGIES_MAX):
        engine.apply_position(PositionSnapshot(ACCT, BTC, 1.0, 900.0, NOW, f"s{k}"))
    extra = PositionSnapshot(ACCT, BTC, 1.0, 900.0, NOW, "one-more")
    assert engine.apply_position(extra) is ApplyResult.STRATEGY_LIMIT
    result = engine.apply_fill(fill("f1", Side.BUY, 1.0, 1_000.0, "one-more"))
    assert result is ApplyResult.STRATEGY_LIMIT
    acct = engine.book.accounts[ACCT]
    assert "one-more" not in acct.strategies
    assert acct.positions[BTC].quantity == 1.0  # the account's part is applied


def test_strategy_drawdown_policy_denies_that_strategy_while_another_trades_on():
    """Acceptance: a strategy's drawdown policy denies that strategy's orders while another
    strategy of the same account trades on."""
    engine = engine_with([strategy_policy(Metric.DRAWDOWN_MAX, 0.01)])
    engine.apply_fill(fill("f1", Side.BUY, 10.0, 1_000.0, "loser"))
    engine.apply_fill(fill("f2", Side.BUY, 1.0, 100.0, "winner", symbol=ETH))
    engine.monitor(NOW)  # observes the peaks: loser's PnL 0 at equity 100,000
    engine.set_mark(BTC, 800.0, NOW + 1, NOW + 1)  # loser −2,000 = 2 % of the equity at peak
    engine.monitor(NOW + 1)
    denied = engine.check(buy("loser", 0.1, "o1", 800.0), NOW + 2, True)
    assert denied.approved is False
    assert denied.reason is DenyReason.POLICY_VIOLATION
    assert "Strategy drawdown_max" in denied.message
    approved = engine.check(buy("winner", 0.1, "o2", 800.0), NOW + 2, True)
    assert approved.approved is True, approved.message
    unnamed = engine.check(buy(None, 0.1, "o3", 800.0), NOW + 2, True)
    assert unnamed.approved is True, unnamed.message  # account-level drawdown is 2 % only


def test_strategy_drawdown_lets_a_reducing_order_of_that_strategy_through():
    engine = engine_with([strategy_policy(Metric.DRAWDOWN_MAX, 0.01)])
    engine.apply_fill(fill("f1", Side.BUY, 10.0, 1_000.0, "loser"))
    engine.monitor(NOW)
    engine.set_mark(BTC, 800.0, NOW + 1, NOW + 1)
    sell = Order("o9", ACCT, BTC, Side.SELL, 5.0, 800.0, OrderType.LIMIT, strategy_id="loser")
    decision = engine.check(sell, NOW + 2, True)
    assert decision.approved is True, decision.message
    assert decision.warnings  # the violation that held before it is a warning


def test_strategy_gross_exposure_counts_the_strategys_reservations():
    engine = engine_with([strategy_policy(Metric.GROSS_EXPOSURE, 2_500.0, "s1")])
    assert engine.check(buy("s1", 2.0, "o1"), NOW, True).approved
    second = engine.check(buy("s1", 1.0, "o2"), NOW, True)
    assert second.approved is False  # 2,000 reserved + 1,000 > 2,500
    assert engine.check(buy("s2", 2.0, "o3"), NOW, True).approved  # another strategy
    assert engine.check(buy(None, 2.0, "o4"), NOW, True).approved  # no strategy


def test_strategy_daily_pnl_floor_reads_the_strategys_pnl():
    floor = strategy_policy(Metric.DAILY_PNL, -500.0, operator=Operator.GTE)
    engine = engine_with([floor])
    engine.apply_fill(fill("f1", Side.BUY, 5.0, 1_000.0, "s1"))
    engine.monitor(NOW)
    engine.set_mark(BTC, 880.0, NOW + 1, NOW + 1)  # s1 −600 today
    assert not engine.check(buy("s1", 0.1, "o1", 880.0), NOW + 2, True).approved
    assert engine.check(buy("s2", 0.1, "o2", 880.0), NOW + 2, True).approved


def test_monitor_reports_strategies_alerts_and_trips_the_strategy_not_the_account():
    stop = strategy_policy(Metric.DRAWDOWN_MAX, 0.01, type=PolicyType.EMERGENCY)
    engine = engine_with([stop])
    engine.apply_fill(fill("f1", Side.BUY, 10.0, 1_000.0, "loser"))
    engine.apply_fill(fill("f2", Side.BUY, 1.0, 100.0, "winner", symbol=ETH))
    [first] = engine.monitor(NOW)
    assert set(first.strategies) == {"loser", "winner"}
    engine.set_mark(BTC, 800.0, NOW + 1, NOW + 1)
    [report] = engine.monitor(NOW + 1)
    assert report.trip is None  # the account is not tripped
    [trip] = report.strategy_trips
    assert (trip.account_id, trip.strategy_id) == (ACCT, "loser")
    assert [(a.strategy_id, a.level.value) for a in report.alerts] == [("loser", "emergency")]
    assert report.strategies["loser"].metrics.drawdown_max == pytest.approx(0.02)
    assert report.strategies["winner"].violations == []
    # in force at once on this instance: the loser's orders only
    assert not engine.check(buy("loser", 0.1, "o1", 800.0), NOW + 2, True).approved
    assert engine.check(buy("winner", 0.1, "o2", 800.0), NOW + 2, True).approved
    [again] = engine.monitor(NOW + 3)
    assert again.strategy_trips == []  # onset only


@pytest.mark.parametrize(
    "metric", [Metric.MARGIN_RATIO, Metric.DRAWDOWN_WINDOW, Metric.VAR_99, Metric.ES_97_5]
)
def test_strategy_scope_on_a_metric_a_strategy_has_not_is_refused(metric):
    with pytest.raises(PolicyError, match="scope it to the account"):
        PolicySet([strategy_policy(metric, 1.0)])


def test_hard_strategy_violations_do_not_feed_the_accounts_circuit_breaker():
    engine = engine_with([strategy_policy(Metric.GROSS_EXPOSURE, 1.0)])
    engine.apply_fill(fill("f1", Side.BUY, 10.0, 1_000.0, "s1"))
    for k in range(10):  # the breaker trips at 5 hard violations within 60 s
        [report] = engine.monitor(NOW + k)
        assert report.strategies["s1"].violations
        assert report.trip is None
        assert report.strategy_trips == []  # hard, not emergency: alerts only


def test_new_lease_holder_trips_a_strategy_in_breach_unless_cleared_after_its_onset():
    from risk_worker.domain.trading_state import StateValue, auto_strategy_key  # noqa: PLC0415
    from risk_worker.domain.types import TradingState  # noqa: PLC0415

    stop = strategy_policy(Metric.DRAWDOWN_MAX, 0.01, type=PolicyType.EMERGENCY)
    for cleared_after_onset in (False, True):
        engine = engine_with([stop])
        engine.apply_fill(fill("f1", Side.BUY, 10.0, 1_000.0, "loser"))
        engine.monitor(NOW, apply_trips=False)
        engine.set_mark(BTC, 800.0, NOW + 1, NOW + 1)
        [standby] = engine.monitor(NOW + 1, apply_trips=False)  # the onset, seen as a standby
        assert standby.strategy_trips  # decided, but a standby writes nothing
        assert engine.states.strategy_severity(ACCT, "loser") == 0
        if cleared_after_onset:
            key = auto_strategy_key(ACCT, "loser")
            engine.states.apply(key, StateValue(TradingState.ACTIVE, "ok", "op", NOW + 2), 1)
        [holder] = engine.monitor(NOW + 3, apply_trips=True, catch_up=True)
        assert bool(holder.strategy_trips) is not cleared_after_onset
        [later] = engine.monitor(NOW + 4)
        assert later.strategy_trips == []
