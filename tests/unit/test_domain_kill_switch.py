"""Issue 12 in the pure core: the restricted list, strategy and symbol stops, and what a HALT
releases."""

from __future__ import annotations

import msgspec
import pytest

from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Order
from risk_worker.domain.restricted import (
    RestrictedList,
    Restriction,
    parse_restricted_key,
    restricted_key,
)
from risk_worker.domain.trading_state import (
    GLOBAL_KEY,
    StateValue,
    TradingStates,
    account_key,
    auto_key,
    scope_of_key,
    strategy_key,
    symbol_key,
)
from risk_worker.domain.types import DenyReason, OrderType, RiskLevel, Side, TradingState
from risk_worker.wire.outbound import CancelAllMsg, cancel_all_msg
from tests.unit.test_domain_decision import ACCT, BTC, NOW, make_engine, set_state

ETH = "ETHUSDT"
BAN = Restriction("sanctions list", "alice", NOW)


def order(
    side: Side,
    quantity: float,
    symbol: str = BTC,
    strategy: str | None = None,
    order_id: str = "o1",
    price: float = 1_000.0,
) -> Order:
    return Order(
        order_id, ACCT, symbol, side, quantity, price, OrderType.LIMIT, strategy, timestamp=NOW
    )


def restrict(engine: RiskEngine, key: str, value: Restriction | None = BAN) -> None:
    r = engine.states.restricted
    r.apply(key, value, max([0, *r._revisions.values()]) + 1)


def engine_with_btc(long_qty: float = 2.0) -> RiskEngine:
    engine = make_engine(balance=100_000.0, position=(long_qty, 1_000.0), mark=1_000.0)
    engine.set_mark(ETH, 1_000.0, NOW, NOW)
    return engine


# -- restricted list ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("restricted.BTCUSDT", (None, "BTCUSDT")),
        ("restricted.account.A1.BTCUSDT", ("A1", "BTCUSDT")),
        ("restricted.account", (None, "account")),
        ("restricted.a.b", None),
        ("restricted.account.A1", None),
        ("restricted.", None),
        ("trading_state.global", None),
    ],
)
def test_parse_restricted_key_when_shaped_or_not_then_symbol_or_none(
    key: str, parsed: tuple[str | None, str] | None
) -> None:
    assert parse_restricted_key(key) == parsed
    if parsed is not None:
        assert restricted_key(parsed[1], parsed[0]) == key


def test_check_when_symbol_restricted_globally_then_buy_denied_with_reason() -> None:
    engine = engine_with_btc()
    restrict(engine, restricted_key(ETH))
    d = engine.check(order(Side.BUY, 1.0, ETH), NOW, True)
    assert (d.approved, d.reason, d.risk_level) == (
        False,
        DenyReason.RESTRICTED_SYMBOL,
        RiskLevel.BREACHED,
    )
    assert "ETHUSDT is restricted (all) by alice: sanctions list" in d.message
    assert engine.book.accounts[ACCT].pending.exposure()[0][0] == 0  # nothing reserved


def test_check_when_symbol_restricted_then_strictly_reducing_order_passes() -> None:
    engine = engine_with_btc(long_qty=2.0)
    restrict(engine, restricted_key(BTC))
    assert engine.check(order(Side.SELL, 2.0), NOW, True).approved  # closes the long
    flip = engine.check(order(Side.SELL, 3.0, order_id="o2"), NOW, True)
    assert flip.reason is DenyReason.RESTRICTED_SYMBOL  # a flip increases risk
    add = engine.check(order(Side.BUY, 0.1, order_id="o3"), NOW, True)
    assert add.reason is DenyReason.RESTRICTED_SYMBOL


def test_check_when_restricted_for_another_account_or_symbol_then_approved() -> None:
    engine = engine_with_btc()
    restrict(engine, restricted_key(ETH, "someone-else"))
    restrict(engine, restricted_key("SOLUSDT"))
    assert engine.check(order(Side.BUY, 1.0, ETH), NOW, True).approved


def test_check_when_restricted_for_this_account_then_denied_and_lifted_then_approved() -> None:
    engine = engine_with_btc()
    key = restricted_key(ETH, ACCT)
    restrict(engine, key)
    d = engine.check(order(Side.BUY, 1.0, ETH), NOW, True)
    assert d.reason is DenyReason.RESTRICTED_SYMBOL and f"account {ACCT}" in d.message
    restrict(engine, key, None)  # removed (a delete marker)
    assert engine.check(order(Side.BUY, 1.0, ETH, order_id="o2"), NOW, True).approved


def test_restricted_list_when_late_revision_then_ignored_and_reset_forgets() -> None:
    r = RestrictedList()
    assert not r
    assert r.apply(restricted_key(BTC), BAN, 5)
    assert not r.apply(restricted_key(BTC), None, 4)  # older: the restriction stays
    assert r.find(ACCT, BTC) == (restricted_key(BTC), BAN)
    assert not r.apply("restricted.a.b", BAN, 9)
    assert r.entries() == [(restricted_key(BTC), BAN)]
    states = TradingStates()
    states.restricted.apply(restricted_key(BTC), BAN, 1)
    states.reset()
    assert not states.restricted and states.restricted.find(ACCT, BTC) is None


def test_check_when_halted_and_restricted_then_the_stop_is_reported_first() -> None:
    engine = engine_with_btc()
    restrict(engine, restricted_key(ETH))
    set_state(engine, GLOBAL_KEY, TradingState.HALTED)
    d = engine.check(order(Side.BUY, 1.0, ETH), NOW, True)
    assert d.reason is DenyReason.EMERGENCY_STOP_ACTIVE


# -- strategy and symbol scopes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "scope"),
    [
        (strategy_key("momo-1"), ("strategy", "momo-1")),
        (symbol_key(BTC), ("symbol", BTC)),
        ("trading_state.strategy.", ("unknown", None)),
        ("trading_state.other.x", ("unknown", None)),
    ],
)
def test_scope_of_key_when_strategy_or_symbol_then_parsed_before_the_global_fallback(
    key: str, scope: tuple[str, str | None]
) -> None:
    assert scope_of_key(key) == scope


def test_check_when_strategy_halted_then_its_orders_denied_and_others_pass() -> None:
    engine = engine_with_btc()
    set_state(engine, strategy_key("momo-1"), TradingState.HALTED)
    d = engine.check(order(Side.BUY, 1.0, strategy="momo-1"), NOW, True)
    assert d.reason is DenyReason.EMERGENCY_STOP_ACTIVE and "strategy momo-1" in d.message
    assert engine.check(order(Side.BUY, 1.0, strategy="other", order_id="o2"), NOW, True).approved
    assert engine.check(order(Side.BUY, 1.0, order_id="o3"), NOW, True).approved  # no strategy
    # the strategy's stop does not leak into the account's state (monitor, metrics)
    assert engine.states.effective(ACCT).state is TradingState.ACTIVE


def test_check_when_symbol_reducing_then_only_reducing_orders_of_that_symbol_pass() -> None:
    engine = engine_with_btc(long_qty=2.0)
    set_state(engine, symbol_key(BTC), TradingState.REDUCING)
    d = engine.check(order(Side.BUY, 1.0), NOW, True)
    assert d.reason is DenyReason.REDUCING_ONLY and "symbol BTCUSDT" in d.message
    assert engine.check(order(Side.SELL, 1.0, order_id="o2"), NOW, True).approved
    assert engine.check(order(Side.BUY, 1.0, ETH, order_id="o3"), NOW, True).approved


def test_effective_when_several_scopes_then_the_most_restrictive_wins() -> None:
    states = TradingStates()
    states.apply(account_key(ACCT), StateValue(TradingState.REDUCING, "acct"), 1)
    states.apply(symbol_key(BTC), StateValue(TradingState.HALTED, "sym"), 2)
    states.apply(strategy_key("s1"), StateValue(TradingState.REDUCING, "strat"), 3)
    assert states.effective(ACCT, "s1", BTC).state is TradingState.HALTED
    assert states.effective(ACCT, "s1", ETH).scope == "account"
    assert states.effective("other", "s1", ETH).scope == "strategy s1"
    states.apply(symbol_key(BTC), StateValue(TradingState.ACTIVE, "cleared"), 4)
    assert states.effective(ACCT, "s1", BTC).state is TradingState.REDUCING
    assert states.symbol_value(BTC) is None and states.strategy_value("s1") is not None


# -- a HALT releases reservations, and its cancel instruction -----------------------------------


def reserve(engine: RiskEngine, **kw: object) -> None:
    d = engine.check(order(Side.BUY, 1.0, **kw), NOW, True)  # type: ignore[arg-type]
    assert d.approved and d.reservation is not None


@pytest.mark.parametrize(
    ("scope", "scope_id", "left"),
    [
        ("global", None, set()),
        ("account", ACCT, set()),
        ("account", "someone-else", {"b1", "e1", "s1"}),
        ("strategy", "momo-1", {"b1", "e1"}),
        ("symbol", ETH, {"b1", "s1"}),
    ],
)
def test_release_reservations_when_scope_halted_then_only_that_scope_is_released(
    scope: str, scope_id: str | None, left: set[str]
) -> None:
    engine = engine_with_btc()
    reserve(engine, order_id="b1")
    reserve(engine, symbol=ETH, order_id="e1")
    reserve(engine, strategy="momo-1", order_id="s1")
    engine.release_reservations(scope, scope_id)
    pending = engine.book.accounts[ACCT].pending
    assert {oid for oid in ("b1", "e1", "s1") if oid in pending} == left


def test_check_when_reservation_released_by_halt_then_headroom_is_back() -> None:
    engine = make_engine(balance=1_000.0, mark=1_000.0)  # margin for 10 BTC at 10 %
    assert engine.check(order(Side.BUY, 9.0, order_id="big"), NOW, True).approved
    assert engine.check(order(Side.BUY, 5.0, order_id="o2"), NOW, True).reason is (
        DenyReason.INSUFFICIENT_MARGIN
    )
    engine.release_reservations("account", ACCT)
    assert engine.check(order(Side.BUY, 5.0, order_id="o3"), NOW, True).approved


@pytest.mark.parametrize(
    ("key", "fields"),
    [
        (GLOBAL_KEY, ("global", None, None, None)),
        ("trading_state.unknown-thing", ("global", None, None, None)),
        (account_key(ACCT), ("account", ACCT, None, None)),
        (auto_key(ACCT), ("account", ACCT, None, None)),
        (strategy_key("momo-1"), ("strategy", None, "momo-1", None)),
        (symbol_key(BTC), ("symbol", None, None, BTC)),
    ],
)
def test_cancel_all_msg_when_halted_then_scope_and_ids_and_revision(
    key: str, fields: tuple[str, str | None, str | None, str | None]
) -> None:
    value = StateValue(TradingState.HALTED, "incident", "alice", NOW)
    msg = cancel_all_msg(key, value, 42, NOW + 5)
    assert msg is not None
    assert (msg.scope, msg.account_id, msg.strategy_id, msg.symbol) == fields
    assert (msg.state, msg.reason, msg.triggered_by, msg.revision, msg.timestamp) == (
        TradingState.HALTED,
        "incident",
        "alice",
        42,
        NOW,
    )
    assert set(msgspec.structs.asdict(msg)) == {
        "scope", "account_id", "strategy_id", "symbol", "state", "reason", "triggered_by",
        "revision", "timestamp",
    }  # fmt: skip


@pytest.mark.parametrize("state", [TradingState.ACTIVE, TradingState.REDUCING, None])
def test_cancel_all_msg_when_not_halted_then_none(state: TradingState | None) -> None:
    value = None if state is None else StateValue(state, "x", "alice", NOW)
    assert cancel_all_msg(GLOBAL_KEY, value, 7, NOW) is None
    assert cancel_all_msg("lease.monitor", StateValue(TradingState.HALTED), 7, NOW) is None
    assert CancelAllMsg.__struct_fields__[0] == "scope"
