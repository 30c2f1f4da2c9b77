"""Order-level controls: price collar, order size, message throttle."""

from __future__ import annotations

import pytest

from risk_worker.domain.controls import WINDOW_MS
from risk_worker.domain.policies import default_policies
from risk_worker.domain.trading_state import StateValue, account_key
from risk_worker.domain.types import (
    DenyReason,
    Metric,
    PolicyType,
    RiskLevel,
    Scope,
    Side,
    TradingState,
)
from tests.controls_kit import (
    ACCT,
    BTC,
    ETH,
    NOW,
    check,
    control,
    make_engine,
    order,
)

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
