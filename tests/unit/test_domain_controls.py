"""Order-level controls in the pure core: throttle, duplicate order id, price collar, order
size and open orders (issue 12)."""

from __future__ import annotations

import pytest

from risk_worker.domain.book import Fill, PnlSnapshot, PositionSnapshot
from risk_worker.domain.controls import WINDOW_MS
from risk_worker.domain.decision import Decision, Order
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.metrics import RiskConfig
from risk_worker.domain.policies import Policy, default_policies
from risk_worker.domain.trading_state import StateValue, account_key
from risk_worker.domain.types import (
    DenyReason,
    Metric,
    Operator,
    OrderType,
    PolicyType,
    RiskLevel,
    Scope,
    Side,
    TradingState,
)
from risk_worker.wire.inbound import pending_order, reservation_msg

ACCT = "a1"
BTC = "BTCUSDT"
ETH = "ETHUSDT"
NOW = 1_700_000_000_000


def control(
    metric: Metric,
    threshold: float,
    scope: Scope = Scope.ACCOUNT,
    scope_id: str | None = None,
    kind: PolicyType = PolicyType.HARD,
    name: str | None = None,
) -> Policy:
    name = name or f"{metric} {scope} {scope_id}"
    return Policy(f"id-{name}", name, kind, metric, Operator.LTE, threshold, scope, scope_id)


def make_engine(
    policies: list[Policy] | None = None,
    balance: float = 1_000_000.0,
    position: float | None = None,
    marks: dict[str, float] | None = None,
    accounts: tuple[str, ...] = (ACCT,),
) -> RiskEngine:
    engine = RiskEngine(RiskConfig())
    engine.load_policies(default_policies() if policies is None else policies)
    for account in accounts:
        engine.apply_pnl(PnlSnapshot(account, balance, None, None, 1))
    if position is not None:
        engine.apply_position(PositionSnapshot(ACCT, BTC, position, 1_000.0, 1))
    for symbol, price in ({BTC: 1_000.0, ETH: 100.0} if marks is None else marks).items():
        engine.set_mark(symbol, price, NOW, NOW)
    return engine


def order(
    side: Side,
    quantity: float,
    price: float | None = 1_000.0,
    order_id: str = "o1",
    *,
    symbol: str = BTC,
    account: str = ACCT,
    strategy: str | None = None,
    dry_run: bool = False,
) -> Order:
    kind = OrderType.MARKET if price is None else OrderType.LIMIT
    return Order(order_id, account, symbol, side, quantity, price, kind, strategy, dry_run=dry_run)


def check(engine: RiskEngine, o: Order, now: int = NOW) -> Decision:
    return engine.check(o, now, True)


# price collar


@pytest.mark.parametrize(
    ("side", "limit", "deviation"),
    [(Side.BUY, 1_060.0, 0.06), (Side.SELL, 940.0, 0.06), (Side.SELL, 100.0, 0.9)],
)
def test_check_when_limit_through_the_mark_beyond_the_band_then_price_out_of_collar(
    side: Side, limit: float, deviation: float
) -> None:
    engine = make_engine()
    decision = check(engine, order(side, 1.0, limit))
    assert (decision.approved, decision.reason) == (False, DenyReason.PRICE_OUT_OF_COLLAR)
    assert [v.policy.name for v in decision.violations] == ["Price Collar"]
    assert decision.violations[0].value == pytest.approx(deviation)
    assert decision.violations[0].symbol == BTC
    assert decision.message.startswith("Price Collar: price_deviation")
    assert "against mark 1000" in decision.message and f"limit {limit:g}" in decision.message
    assert len(engine.book.accounts[ACCT].pending) == 0


@pytest.mark.parametrize(
    ("side", "limit"),
    [(Side.BUY, 1_050.0), (Side.SELL, 950.0), (Side.BUY, 500.0), (Side.SELL, 5_000.0)],
    ids=["buy_at_band", "sell_at_band", "passive_buy", "passive_sell"],
)
def test_check_when_within_the_band_or_passive_then_not_collared(side: Side, limit: float) -> None:
    decision = check(make_engine(), order(side, 1.0, limit))
    assert decision.approved is True, decision.message
    assert decision.utilization["Price Collar"] <= 1.0


def test_check_when_sell_1_at_5000_against_50000_then_denied_by_the_collar_not_drawdown() -> None:
    engine = make_engine(marks={BTC: 50_000.0})
    decision = check(engine, order(Side.SELL, 1.0, 5_000.0))
    assert decision.reason is DenyReason.PRICE_OUT_OF_COLLAR
    assert decision.violations[0].value == pytest.approx(0.9)


def test_check_when_market_order_or_no_mark_then_not_collared() -> None:
    assert check(make_engine(), order(Side.BUY, 1.0, None)).approved is True
    engine = make_engine(marks={})
    assert check(engine, order(Side.BUY, 1.0, 1e6)).approved is True  # nothing to compare


def test_check_when_reducing_order_through_the_collar_then_denied_even_in_reducing_state() -> None:
    engine = make_engine(position=5.0)
    engine.states.apply(account_key(ACCT), StateValue(TradingState.REDUCING, "test"), 1)
    decision = check(engine, order(Side.SELL, 1.0, 800.0))  # reduces, at a fat-finger price
    assert decision.reason is DenyReason.PRICE_OUT_OF_COLLAR
    assert decision.trading_state is TradingState.REDUCING
    decision = check(engine, order(Side.SELL, 1.0, 990.0, "o2"))  # reduces, within the band
    assert decision.approved is True, decision.message


def test_check_when_symbol_has_its_own_band_then_it_replaces_the_default() -> None:
    wide = control(Metric.PRICE_DEVIATION, 0.10, Scope.SYMBOL, BTC, name="BTC Band")
    engine = make_engine([*default_policies(), wide])
    assert check(engine, order(Side.BUY, 1.0, 1_080.0)).approved is True  # 8 % < 10 %
    decision = check(engine, order(Side.BUY, 1.0, 1_120.0, "o2"))
    assert [v.policy.name for v in decision.violations] == ["BTC Band"]
    decision = check(engine, order(Side.BUY, 1.0, 108.0, "o3", symbol=ETH))  # 8 % > 5 %
    assert [v.policy.name for v in decision.violations] == ["Price Collar"]


def test_check_when_soft_collar_violated_then_approved_with_warning() -> None:
    soft = control(Metric.PRICE_DEVIATION, 0.01, kind=PolicyType.SOFT, name="Collar Warning")
    decision = check(make_engine([soft]), order(Side.BUY, 1.0, 1_030.0))
    assert decision.approved is True
    assert [w.policy.name for w in decision.warnings] == ["Collar Warning"]
    assert decision.risk_level is RiskLevel.HIGH  # utilization 3


# order size


def test_check_when_huge_quantity_at_a_tiny_limit_then_order_too_large() -> None:
    engine = make_engine(balance=100_000.0)
    decision = check(engine, order(Side.BUY, 1e20, 1e-15))  # approved before issue 12
    assert (decision.approved, decision.reason) == (False, DenyReason.ORDER_TOO_LARGE)
    assert [v.policy.name for v in decision.violations] == ["Max Order Size"]
    assert decision.violations[0].value == pytest.approx(1e20 * 1_000.0 / 100_000.0)
    assert "notional" in decision.message and "equity 100000.00" in decision.message


def test_check_when_notional_over_ten_times_equity_then_order_too_large() -> None:
    engine = make_engine(balance=10_000.0, policies=[*default_policies()[5:]])  # controls only
    decision = check(engine, order(Side.BUY, 100.1, 1_000.0, dry_run=True))
    assert decision.reason is DenyReason.ORDER_TOO_LARGE
    assert decision.violations[0].value == pytest.approx(10.01)
    assert check(engine, order(Side.BUY, 100.0, 1_000.0, dry_run=True)).approved is True  # = 10


@pytest.mark.parametrize(
    ("metric", "threshold", "value"),
    [(Metric.ORDER_QUANTITY, 2.0, 3.0), (Metric.ORDER_NOTIONAL, 2_500.0, 3_000.0)],
)
def test_check_when_quantity_or_notional_cap_exceeded_then_order_too_large(
    metric: Metric, threshold: float, value: float
) -> None:
    decision = check(make_engine([control(metric, threshold)]), order(Side.BUY, 3.0, 990.0))
    assert decision.reason is DenyReason.ORDER_TOO_LARGE
    assert decision.violations[0].value == pytest.approx(value)  # valued at the mark, 1,000


def test_check_when_equity_not_positive_then_any_order_too_large() -> None:
    engine = make_engine(balance=0.0)
    decision = check(engine, order(Side.BUY, 0.001, 1_000.0))
    assert decision.reason is DenyReason.ORDER_TOO_LARGE


def test_check_when_reducing_order_within_the_size_then_approved_in_reducing_state() -> None:
    engine = make_engine(balance=1_000.0, position=50.0)  # size cap: 10,000 of notional
    engine.states.apply(account_key(ACCT), StateValue(TradingState.REDUCING, "test"), 1)
    assert check(engine, order(Side.SELL, 5.0, 1_000.0)).approved is True
    decision = check(engine, order(Side.SELL, 20.0, 1_000.0, "o2"))  # reduces, but too large
    assert decision.reason is DenyReason.ORDER_TOO_LARGE


# message throttle


def test_check_when_51st_live_check_in_a_second_then_rate_limited_and_denials_count() -> None:
    engine = make_engine()
    for k in range(50):
        decision = check(engine, order(Side.BUY, 0.01, 1_000.0, f"o{k}"), NOW + k)
        assert decision.approved is True, (k, decision.message)
    decision = check(engine, order(Side.BUY, 0.01, 1_000.0, "o50"), NOW + 50)
    assert (decision.approved, decision.reason) == (False, DenyReason.RATE_LIMITED)
    assert [v.policy.name for v in decision.violations] == ["Max Order Rate"]
    assert decision.violations[0].value == 51.0
    assert decision.message.startswith("Max Order Rate: order_rate 51 violates lte 50")
    # the 52nd, one second after the first, still sees 51 in its window (denials count)
    decision = check(engine, order(Side.BUY, 0.01, 1_000.0, "o51"), NOW + WINDOW_MS - 1)
    assert decision.reason is DenyReason.RATE_LIMITED
    # once the flood is a second old, checks pass again
    decision = check(engine, order(Side.BUY, 0.01, 1_000.0, "o52"), NOW + WINDOW_MS + 60)
    assert decision.approved is True, decision.message


def test_check_when_dry_run_then_neither_counted_nor_throttled() -> None:
    engine = make_engine()
    for k in range(200):
        assert check(engine, order(Side.BUY, 0.01, 1_000.0, f"d{k}", dry_run=True)).approved
    for k in range(50):
        assert check(engine, order(Side.BUY, 0.01, 1_000.0, f"o{k}")).approved
    assert check(engine, order(Side.BUY, 0.01, 1_000.0, "o50")).reason is DenyReason.RATE_LIMITED
    assert check(engine, order(Side.BUY, 0.01, 1_000.0, "d", dry_run=True)).approved is True


def test_check_when_another_account_floods_then_this_one_is_not_throttled() -> None:
    engine = make_engine(accounts=(ACCT, "a2"))
    for k in range(60):
        check(engine, order(Side.BUY, 0.01, 1_000.0, f"o{k}", account="a2"))
    assert check(engine, order(Side.BUY, 0.01, 1_000.0)).approved is True


def test_check_when_strategy_rate_exceeded_across_accounts_then_rate_limited() -> None:
    per_strategy = control(Metric.ORDER_RATE, 2.0, Scope.STRATEGY, name="Strategy Rate")
    engine = make_engine([per_strategy], accounts=(ACCT, "a2"))
    assert check(engine, order(Side.BUY, 0.01, 1_000.0, "o1", strategy="s1")).approved
    assert check(engine, order(Side.BUY, 0.01, 1_000.0, "o2", account="a2", strategy="s1")).approved
    assert check(engine, order(Side.BUY, 0.01, 1_000.0, "o3", strategy="s2")).approved
    assert check(engine, order(Side.BUY, 0.01, 1_000.0, "o4")).approved  # no strategy
    decision = check(engine, order(Side.BUY, 0.01, 1_000.0, "o5", account="a2", strategy="s1"))
    assert decision.reason is DenyReason.RATE_LIMITED
    assert decision.violations[0].value == 3.0


def test_prune_when_windows_idle_then_forgotten() -> None:
    engine = make_engine()
    check(engine, order(Side.BUY, 0.01, 1_000.0))
    assert ACCT in engine.rates.accounts
    engine.begin_monitor_pass(NOW + WINDOW_MS - 1)
    assert ACCT in engine.rates.accounts
    engine.begin_monitor_pass(NOW + WINDOW_MS)
    assert engine.rates.accounts == {}


# duplicate order id


def test_check_when_same_order_retried_then_same_approval_duplicate_and_one_reservation() -> None:
    engine = make_engine()
    first = check(engine, order(Side.BUY, 2.0, 1_000.0))
    assert first.approved is True and first.reservation is not None
    retry = check(engine, order(Side.BUY, 2.0, 1_000.0), NOW + 5)
    assert (retry.approved, retry.reason, retry.duplicate) == (True, None, True)
    assert retry.risk_level is first.risk_level
    assert retry.reservation is None  # nothing announced, nothing reserved again
    assert "duplicate" in retry.message
    assert len(engine.book.accounts[ACCT].pending) == 1
    assert first.duplicate is False


@pytest.mark.parametrize(
    "changed",
    [
        order(Side.BUY, 3.0, 1_000.0),
        order(Side.SELL, 2.0, 1_000.0),
        order(Side.BUY, 2.0, 1_001.0),
        order(Side.BUY, 2.0, None),
        order(Side.BUY, 2.0, 100.0, symbol=ETH),
    ],
    ids=["quantity", "side", "price", "type", "symbol"],
)
def test_check_when_order_id_reused_with_other_content_then_duplicate_order_id(
    changed: Order,
) -> None:
    engine = make_engine()
    assert check(engine, order(Side.BUY, 2.0, 1_000.0)).approved is True
    decision = check(engine, changed)
    assert (decision.approved, decision.reason) == (False, DenyReason.DUPLICATE_ORDER_ID)
    assert decision.message.startswith("Duplicate Order Id: order_id o1")
    [reservation] = engine.book.accounts[ACCT].pending._orders.values()
    assert reservation.signed_qty == 2.0  # the live order is untouched


def test_check_when_dry_run_reuses_a_live_order_id_then_checked_as_before() -> None:
    engine = make_engine()
    check(engine, order(Side.BUY, 2.0, 1_000.0))
    decision = check(engine, order(Side.BUY, 5.0, 1_000.0, dry_run=True))
    assert (decision.approved, decision.duplicate) == (True, False)


def test_check_when_reservation_lapsed_or_filled_then_order_id_is_new_again() -> None:
    engine = make_engine()
    check(engine, order(Side.BUY, 2.0, 1_000.0))
    later = NOW + engine.config.pending_ttl_ms + 1
    decision = check(engine, order(Side.BUY, 3.0, 1_000.0), later)
    assert (decision.approved, decision.duplicate) == (True, False)
    engine.apply_fill(Fill("f1", "o1", ACCT, BTC, Side.BUY, 3.0, 1_000.0, 0.0, later))
    decision = check(engine, order(Side.BUY, 3.0, 1_000.0), later + 1)
    assert (decision.approved, decision.duplicate) == (True, False)


def test_check_when_reservation_announced_by_another_instance_then_retry_is_duplicate() -> None:
    first, second = make_engine(), make_engine()
    approved = check(first, order(Side.BUY, 2.0, 1_000.0, strategy="s1"))
    assert approved.reservation is not None
    second.apply_reservation(ACCT, pending_order(reservation_msg("w1", ACCT, approved.reservation)))
    retry = check(second, order(Side.BUY, 2.0, 1_000.0, strategy="s1"))
    assert (retry.approved, retry.duplicate, retry.risk_level) == (True, True, RiskLevel.HIGH)
    other = check(second, order(Side.BUY, 2.5, 1_000.0, strategy="s1"))
    assert other.reason is DenyReason.DUPLICATE_ORDER_ID


# open orders


def test_check_when_open_orders_at_the_limit_then_too_many_open_orders() -> None:
    engine = make_engine([control(Metric.OPEN_ORDERS, 2.0, name="Max Open Orders")])
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o1")).approved
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o2")).approved
    for dry in (True, False):
        decision = check(engine, order(Side.BUY, 0.1, 1_000.0, "o3", dry_run=dry))
        assert (decision.approved, decision.reason) == (False, DenyReason.TOO_MANY_OPEN_ORDERS)
        assert decision.violations[0].value == 3.0
    engine.apply_fill(Fill("f1", "o1", ACCT, BTC, Side.BUY, 0.1, 1_000.0, 0.0, NOW))
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o3")).approved is True


def test_check_when_open_orders_scoped_to_symbol_or_strategy_then_counts_only_those() -> None:
    engine = make_engine(
        [
            control(Metric.OPEN_ORDERS, 1.0, Scope.SYMBOL, ETH, name="ETH Open"),
            control(Metric.OPEN_ORDERS, 1.0, Scope.STRATEGY, "s1", name="S1 Open"),
        ]
    )
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o1")).approved
    assert check(engine, order(Side.BUY, 0.1, 100.0, "o2", symbol=ETH)).approved
    decision = check(engine, order(Side.BUY, 0.1, 100.0, "o3", symbol=ETH))
    assert [v.policy.name for v in decision.violations] == ["ETH Open"]
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o4", strategy="s1")).approved
    decision = check(engine, order(Side.BUY, 0.1, 1_000.0, "o5", strategy="s1"))
    assert [v.policy.name for v in decision.violations] == ["S1 Open"]
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o6", strategy="s2")).approved


def test_check_when_dry_run_rechecks_a_live_order_then_it_is_not_counted_twice() -> None:
    engine = make_engine([control(Metric.OPEN_ORDERS, 1.0)])
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o1")).approved
    assert check(engine, order(Side.BUY, 0.1, 1_000.0, "o1", dry_run=True)).approved


def test_check_when_reducing_order_within_the_open_orders_limit_then_approved() -> None:
    engine = make_engine([control(Metric.OPEN_ORDERS, 1.0)], position=5.0)
    engine.states.apply(account_key(ACCT), StateValue(TradingState.REDUCING, "test"), 1)
    assert check(engine, order(Side.SELL, 1.0, 1_000.0, "o1")).approved is True
    decision = check(engine, order(Side.SELL, 1.0, 1_000.0, "o2"))
    assert decision.reason is DenyReason.TOO_MANY_OPEN_ORDERS


# order of the controls


def test_check_when_several_controls_apply_then_throttle_first_then_collar_size_open() -> None:
    policies = [
        *default_policies(),
        control(Metric.OPEN_ORDERS, 0.0, name="No Orders"),
        control(Metric.ORDER_RATE, 0.0, name="No Rate"),
    ]
    engine = make_engine(policies, balance=1_000.0)
    huge_through = order(Side.BUY, 1e6, 2_000.0)
    assert check(engine, huge_through).reason is DenyReason.RATE_LIMITED
    dry = order(Side.BUY, 1e6, 2_000.0, dry_run=True)
    assert check(engine, dry).reason is DenyReason.PRICE_OUT_OF_COLLAR
    dry = order(Side.BUY, 1e6, 1_000.0, dry_run=True)
    assert check(engine, dry).reason is DenyReason.ORDER_TOO_LARGE
    dry = order(Side.BUY, 0.1, 1_000.0, dry_run=True)
    assert check(engine, dry).reason is DenyReason.TOO_MANY_OPEN_ORDERS


def test_check_when_controls_and_margin_both_fail_then_control_first() -> None:
    engine = make_engine(
        [*default_policies(), control(Metric.ORDER_QUANTITY, 1.0)], balance=1_000.0
    )
    decision = check(engine, order(Side.BUY, 5.0, 1_000.0))  # margin 500 < 1000, but qty 5 > 1
    assert decision.reason is DenyReason.ORDER_TOO_LARGE


def test_check_when_symbol_band_and_account_band_then_both_apply_in_priority_order() -> None:
    account_band = Policy(
        "id-acct", "A1 Band", PolicyType.HARD, Metric.PRICE_DEVIATION, Operator.LTE, 0.02,
        Scope.ACCOUNT, ACCT, priority=1,
    )  # fmt: skip
    symbol_band = Policy(
        "id-sym", "BTC Band", PolicyType.HARD, Metric.PRICE_DEVIATION, Operator.LTE, 0.03,
        Scope.SYMBOL, BTC, priority=2,
    )  # fmt: skip
    engine = make_engine([*default_policies(), symbol_band, account_band])
    decision = check(engine, order(Side.BUY, 1.0, 1_040.0))
    assert [v.policy.name for v in decision.violations] == ["A1 Band", "BTC Band"]
