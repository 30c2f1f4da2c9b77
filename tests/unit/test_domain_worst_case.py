"""Issue 10 §3: the simulated fill books no profit, and reservations count in every metric."""

from __future__ import annotations

import pytest

from risk_worker.domain.book_events import PnlSnapshot, PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Decision, Order
from risk_worker.domain.policies import ORDER_METRICS, Policy, default_policies
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.trading_state import StateValue, account_key
from risk_worker.domain.types import (
    DenyReason,
    Metric,
    Operator,
    OrderType,
    PolicyType,
    Scope,
    Side,
    TradingState,
)

ACCT = "a1"
BTC = "BTCUSDT"
ETH = "ETHUSDT"
NOW = 1_700_000_000_000


def engine_with(
    balance: float,
    policies: list[Policy],
    position: tuple[float, float] | None = None,
    marks: dict[str, float] | None = None,
) -> RiskEngine:
    engine = RiskEngine(RiskConfig())
    engine.load_policies(policies)
    engine.apply_pnl(PnlSnapshot(ACCT, balance, None, None, 1))
    if position is not None:
        engine.apply_position(PositionSnapshot(ACCT, BTC, position[0], position[1], 1))
    for symbol, price in (marks or {}).items():
        engine.set_mark(symbol, price, NOW, NOW)
    return engine


def check(
    engine: RiskEngine,
    side: Side,
    quantity: float,
    price: float | None,
    order_id: str = "o1",
    symbol: str = BTC,
) -> Decision:
    order_type = OrderType.MARKET if price is None else OrderType.LIMIT
    order = Order(order_id, ACCT, symbol, side, quantity, price, order_type, timestamp=NOW)
    return engine.check(order, NOW, True)


def cap(metric: Metric, operator: Operator, threshold: float, scope: Scope) -> Policy:
    return Policy(
        f"cap-{metric}", f"{metric} cap", PolicyType.HARD, metric, operator, threshold, scope
    )


# 8. the order's own simulated fill


def drawn_down_engine() -> RiskEngine:
    """Long 1 BTC @ 50,000, balance 100,000, peak 100,000 seen; mark now 28,000 (22 % down).

    The post-trade policies of the built-in set: these limits far from the mark test the
    simulation, which the price collar would stop first (tests/unit/test_domain_controls.py).
    """
    post_trade = [p for p in default_policies() if p.metric not in ORDER_METRICS]
    engine = engine_with(100_000.0, post_trade, (1.0, 50_000.0), {BTC: 50_000.0})
    engine.monitor(NOW)  # the peak: equity 100,000
    for price in (40_000.0, 32_000.0, 28_000.0):  # steps within RISK_TICK_MAX_JUMP (25 %)
        engine.set_mark(BTC, price, NOW, NOW)
    return engine


def test_check_when_buy_at_the_mark_in_drawdown_then_denied_max_drawdown() -> None:
    decision = check(drawn_down_engine(), Side.BUY, 0.1, 28_000.0)
    assert decision.reason is DenyReason.POLICY_VIOLATION
    assert [v.policy.name for v in decision.violations] == ["Max Drawdown"]
    assert decision.violations[0].value == pytest.approx(0.22)


def test_check_when_buy_limit_below_the_mark_in_drawdown_then_denied_and_no_profit_booked() -> None:
    decision = check(drawn_down_engine(), Side.BUY, 1.0, 20_000.0)
    assert decision.approved is False  # was approved: filled at 20,000 and valued at 28,000
    assert decision.reason is DenyReason.POLICY_VIOLATION
    assert decision.metrics is not None
    assert decision.metrics.equity == pytest.approx(78_000.0)  # was 86,000
    assert decision.metrics.drawdown_max == pytest.approx(0.22)


def test_check_when_buy_limit_below_the_mark_then_simulated_and_reserved_at_the_mark() -> None:
    engine = engine_with(100_000.0, default_policies(), marks={BTC: 28_000.0})
    decision = check(engine, Side.BUY, 1.0, 20_000.0)
    assert decision.approved is True
    assert decision.metrics is not None
    assert decision.metrics.equity == pytest.approx(100_000.0)  # was 108,000
    assert decision.metrics.peak_equity == pytest.approx(100_000.0)
    assert decision.reservation is not None
    assert decision.reservation.price == pytest.approx(28_000.0)


@pytest.mark.parametrize(
    ("limit", "expected_equity"),
    [
        # fills at min(limit, mark) = 28,000: realized 0.5 × (28,000 − 50,000) = −11,000 and the
        # rest valued at 28,000 (−11,000), so equity stays 78,000 (was 94,000 at 60,000)
        (60_000.0, 78_000.0),
        # a limit below the mark fills at the limit: 0.5 × (25,000 − 28,000) = −1,500 worse
        (25_000.0, 76_500.0),
    ],
)
def test_check_when_sell_then_simulated_at_the_lower_of_limit_and_mark(
    limit: float, expected_equity: float
) -> None:
    decision = check(drawn_down_engine(), Side.SELL, 0.5, limit)
    assert decision.metrics is not None
    assert decision.metrics.equity == pytest.approx(expected_equity)


def test_check_when_sell_limit_below_the_mark_then_order_notional_valued_at_the_mark() -> None:
    order_cap = cap(Metric.ORDER_NOTIONAL, Operator.LTE, 30_000.0, Scope.ACCOUNT)
    engine = engine_with(100_000.0, [order_cap], marks={BTC: 35_000.0})
    decision = check(engine, Side.SELL, 1.0, 25_000.0)  # marketable: it fills near 35,000
    assert decision.reason is DenyReason.ORDER_TOO_LARGE
    assert decision.violations[0].value == pytest.approx(35_000.0)


# 9. reservations in every exposure metric


@pytest.mark.parametrize(
    "limit",
    [
        cap(Metric.POSITION_NOTIONAL, Operator.LTE, 500_000.0, Scope.SYMBOL),
        cap(Metric.POSITION_NOTIONAL, Operator.LTE, 500_000.0, Scope.ACCOUNT),
        cap(Metric.GROSS_EXPOSURE, Operator.LTE, 500_000.0, Scope.ACCOUNT),
        cap(Metric.NET_EXPOSURE, Operator.LTE, 500_000.0, Scope.ACCOUNT),
        cap(Metric.CONCENTRATION, Operator.LTE, 0.5, Scope.SYMBOL),  # 400k / 1M = 0.4
    ],
    ids=lambda p: f"{p.metric}-{p.scope}",
)
def test_check_when_three_buys_of_400k_under_a_500k_cap_then_exactly_one_approved(
    limit: Policy,
) -> None:
    engine = engine_with(1_000_000.0, [*default_policies(), limit], marks={BTC: 50_000.0})
    decisions = [check(engine, Side.BUY, 8.0, 50_000.0, f"o{i}") for i in range(3)]
    assert [d.approved for d in decisions] == [True, False, False]
    assert {d.reason for d in decisions[1:]} == {DenyReason.POLICY_VIOLATION}
    second = decisions[1].metrics
    assert second is not None
    assert second.position_notional[BTC] == pytest.approx(800_000.0)
    assert second.gross_exposure == pytest.approx(800_000.0)
    assert len(engine.book.accounts[ACCT].pending) == 1


def test_check_when_three_sells_under_a_net_exposure_floor_then_exactly_one_approved() -> None:
    floor = cap(Metric.NET_EXPOSURE, Operator.GTE, -500_000.0, Scope.ACCOUNT)
    engine = engine_with(1_000_000.0, [*default_policies(), floor], marks={BTC: 50_000.0})
    decisions = [check(engine, Side.SELL, 8.0, 50_000.0, f"o{i}") for i in range(3)]
    assert [d.approved for d in decisions] == [True, False, False]
    assert decisions[1].violations[0].value == pytest.approx(-800_000.0)


def test_check_when_other_symbol_reserved_then_it_counts_as_an_open_position() -> None:
    one_position = cap(Metric.OPEN_POSITIONS, Operator.LTE, 1.0, Scope.ACCOUNT)
    engine = engine_with(100_000.0, [one_position], marks={BTC: 50_000.0, ETH: 3_000.0})
    assert check(engine, Side.BUY, 0.1, 50_000.0, "o1").approved is True
    decision = check(engine, Side.BUY, 1.0, 3_000.0, "o2", symbol=ETH)
    assert decision.reason is DenyReason.POLICY_VIOLATION
    assert decision.metrics is not None
    assert decision.metrics.open_positions == 2


def test_check_when_flip_through_a_pending_close_then_valued_on_the_position_left() -> None:
    # long 1 @ 50,000; a pending SELL 1 closes it; SELL 8 then opens a short of 8 (400,000),
    # not of 7 as on the held position (350,000)
    limit = cap(Metric.POSITION_NOTIONAL, Operator.LTE, 375_000.0, Scope.SYMBOL)
    engine = engine_with(1_000_000.0, [limit], (1.0, 50_000.0), {BTC: 50_000.0})
    assert check(engine, Side.SELL, 1.0, 50_000.0, "close").approved is True
    decision = check(engine, Side.SELL, 8.0, 50_000.0, "flip")
    assert decision.reason is DenyReason.POLICY_VIOLATION
    assert decision.violations[0].value == pytest.approx(400_000.0)


def test_check_when_reducing_and_a_pending_buy_may_not_fill_then_a_flip_is_not_a_reduction() -> (
    None
):
    # long 2; pending SELL 1.5 and BUY 1 from before the account went REDUCING. If the BUY is
    # cancelled and the SELL fills, SELL 1 turns 0.5 long into 0.5 short.
    engine = engine_with(1_000_000.0, default_policies(), (2.0, 50_000.0), {BTC: 50_000.0})
    assert check(engine, Side.SELL, 1.5, 50_000.0, "s1").approved is True
    assert check(engine, Side.BUY, 1.0, 50_000.0, "b1").approved is True
    key = account_key(ACCT)
    engine.states.apply(key, StateValue(TradingState.REDUCING, "test"), 1)
    assert check(engine, Side.SELL, 1.0, 50_000.0, "s2").reason is DenyReason.REDUCING_ONLY
    assert check(engine, Side.SELL, 0.5, 50_000.0, "s3").approved is True


def test_metrics_when_reservations_then_margin_and_leverage_count_them_once() -> None:
    engine = engine_with(100_000.0, default_policies(), (1.0, 50_000.0), {BTC: 50_000.0})
    assert check(engine, Side.BUY, 1.0, 50_000.0, "b1").approved is True
    m = engine.metrics(ACCT, NOW)
    assert m is not None
    assert m.gross_exposure == pytest.approx(100_000.0)
    assert m.leverage == pytest.approx(1.0)  # not (100,000 + 50,000) / 100,000
    assert m.margin_used == pytest.approx(10_000.0)  # not 10,000 + 5,000
