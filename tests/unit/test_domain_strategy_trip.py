"""The workers' automatic trip of one strategy of one account
(``trading_state.auto.<account>.strategy.<strategy>``, issue 13 §2): parsing, the effective
state of orders, the copy's entries and reset, what a HALT releases and announces, and keys of
any other shape failing closed."""

from __future__ import annotations

import pytest

from risk_worker.domain.trading_state import (
    GLOBAL_KEY,
    StateKey,
    StateValue,
    TradingStates,
    account_key,
    auto_key,
    auto_strategy_key,
    parse_state_key,
    scope_of_key,
    strategy_key,
    symbol_key,
)
from risk_worker.domain.types import DenyReason, Side, StateSource, TradingState
from risk_worker.wire.outbound import cancel_all_msg
from tests.unit.test_domain_decision import ACCT, BTC, NOW, set_state
from tests.unit.test_domain_kill_switch import engine_with_btc, order, reserve

MOMO = "momo-1"
KEY = auto_strategy_key(ACCT, MOMO)
HALTED = StateValue(TradingState.HALTED, "Strategy Loss Stop", "w0", NOW, StateSource.POLICY)
REDUCING = StateValue(TradingState.REDUCING, "Strategy Loss Stop", "w0", NOW, StateSource.POLICY)


def test_auto_strategy_key_when_built_then_parsed_back_with_both_ids() -> None:
    assert f"trading_state.auto.{ACCT}.strategy.{MOMO}" == KEY
    parsed = parse_state_key(KEY)
    assert parsed == StateKey("auto_strategy", ACCT, MOMO, None)
    assert parsed is not None and parsed.scope == "strategy"
    assert scope_of_key(KEY) == ("auto_strategy", ACCT)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (GLOBAL_KEY, StateKey("global")),
        (account_key("a1"), StateKey("account", "a1")),
        (auto_key("a1"), StateKey("auto", "a1")),
        (strategy_key("s1"), StateKey("strategy", strategy_id="s1")),
        (symbol_key(BTC), StateKey("symbol", symbol=BTC)),
        ("restricted.BTCUSDT", None),
        ("lease.monitor", None),
    ],
)
def test_parse_state_key_when_a_known_shape_then_its_kind_and_ids(
    key: str, expected: StateKey | None
) -> None:
    assert parse_state_key(key) == expected


@pytest.mark.parametrize(
    "key",
    [
        "trading_state.auto.a1.strategy.",  # no strategy
        "trading_state.auto..strategy.s1",  # no account
        "trading_state.auto.a1.strategy.s1.x",  # a newer shape
        "trading_state.auto.a1.strategies.s1",
        "trading_state.auto.a1.s1",
        "trading_state.auto.",
        "trading_state.account.a1.b",  # dotted ids: no identifier has a dot
        "trading_state.account.a1.strategy.s1",
        "trading_state.strategy.s1.x",
        "trading_state.symbol.BTC.USD",
        "trading_state.global.x",
    ],
)
def test_parse_state_key_when_another_shape_then_unknown_and_it_halts_every_account(
    key: str,
) -> None:
    assert parse_state_key(key) == StateKey("unknown")
    assert scope_of_key(key) == ("unknown", None)
    states = TradingStates()
    assert states.apply(key, HALTED, 1)
    eff = states.effective("anyone", "any-strategy", BTC)
    assert (eff.state, eff.scope) == (TradingState.HALTED, "global")  # fail closed
    assert states.value(key) == HALTED and states.entries() == [(key, HALTED, 1)]
    assert states.apply(key, None, 2) and states.effective("anyone").state is TradingState.ACTIVE


@pytest.mark.parametrize("value", [HALTED, REDUCING])
def test_effective_when_strategy_tripped_on_account_then_only_its_orders_there(
    value: StateValue,
) -> None:
    states = TradingStates()
    assert states.apply(KEY, value, 7)
    eff = states.effective(ACCT, MOMO, BTC)
    assert (eff.state, eff.value) == (value.state, value)
    assert eff.scope == f"strategy {MOMO} of account {ACCT} (automatic)"
    assert states.effective("other-acct", MOMO, BTC).state is TradingState.ACTIVE
    assert states.effective(ACCT, "other-strategy", BTC).state is TradingState.ACTIVE
    assert states.effective(ACCT, None, BTC).state is TradingState.ACTIVE
    assert states.effective(ACCT).state is TradingState.ACTIVE  # not the account's state
    assert states.account_severity(ACCT) == 0 and states.halted_accounts() == []
    assert states.auto_strategy_value(ACCT, MOMO) == value
    assert states.strategy_severity(ACCT, MOMO) == (2 if value is HALTED else 1)
    assert states.strategy_severity(ACCT, "other-strategy") == 0
    assert states.strategy_value(MOMO) is None  # the operators' stop of the strategy is apart
    assert states.value(KEY) == value and states.revision(KEY) == 7


def test_effective_when_several_scopes_then_most_severe_and_ties_to_the_earlier() -> None:
    states = TradingStates()
    states.apply(KEY, REDUCING, 1)
    states.apply(strategy_key(MOMO), StateValue(TradingState.REDUCING, "ops"), 2)
    assert states.effective(ACCT, MOMO).scope == f"strategy {MOMO}"  # tie: the operators'
    states.apply(KEY, HALTED, 3)
    assert states.effective(ACCT, MOMO).scope.endswith("(automatic)")
    states.apply(symbol_key(BTC), StateValue(TradingState.HALTED, "sym"), 4)
    assert states.effective(ACCT, MOMO, BTC).scope.endswith("(automatic)")  # tie: before symbol


def test_apply_when_cleared_then_active_and_cleared_at_and_late_revision_ignored() -> None:
    states = TradingStates()
    states.apply(KEY, HALTED, 3)
    assert states.strategy_cleared_at(ACCT, MOMO) == 0
    assert states.apply(KEY, StateValue(TradingState.ACTIVE, "ok", "bob", NOW + 9), 4)
    assert states.effective(ACCT, MOMO).state is TradingState.ACTIVE
    assert states.auto_strategy_value(ACCT, MOMO) is None
    assert states.strategy_severity(ACCT, MOMO) == 0
    assert states.strategy_cleared_at(ACCT, MOMO) == NOW + 9
    assert states.cleared_at(ACCT) == 0  # the account's own keys were not cleared
    assert not states.apply(KEY, HALTED, 2)  # a late delivery never rolls the copy back
    assert states.effective(ACCT, MOMO).state is TradingState.ACTIVE
    assert states.apply(KEY, StateValue(TradingState.ACTIVE, "older", "bob", NOW), 5)
    assert states.strategy_cleared_at(ACCT, MOMO) == NOW + 9  # the latest clear is kept
    assert states.apply(KEY, None, 6)  # deleted or purged: ACTIVE too
    assert states.entries() == [(KEY, None, 6)]


def test_entries_and_set_local_and_reset_when_strategy_trips_held() -> None:
    states = TradingStates()
    other = auto_strategy_key("acct-b", MOMO)
    states.apply(KEY, HALTED, 5)
    states.set_local(other, REDUCING)  # this worker's trip before the KV echo
    states.apply(auto_key(ACCT), REDUCING, 6)
    assert states.entries() == [
        (auto_key(ACCT), REDUCING, 6),
        (KEY, HALTED, 5),
        (other, REDUCING, 0),
    ]
    states.apply(KEY, StateValue(TradingState.ACTIVE, "ok", "bob", NOW + 1), 8)
    states.reset()
    assert states.entries() == []
    assert states.effective(ACCT, MOMO).state is TradingState.ACTIVE
    assert states.effective("acct-b", MOMO).state is TradingState.ACTIVE
    assert states.strategy_cleared_at(ACCT, MOMO) == 0 and states.revision(KEY) == 0


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (TradingState.HALTED, DenyReason.EMERGENCY_STOP_ACTIVE),
        (TradingState.REDUCING, DenyReason.REDUCING_ONLY),
    ],
)
def test_check_when_strategy_tripped_on_account_then_its_orders_denied_others_pass(
    state: TradingState, reason: DenyReason
) -> None:
    engine = engine_with_btc()
    set_state(engine, KEY, state)
    d = engine.check(order(Side.BUY, 1.0, strategy=MOMO), NOW, True)
    assert d.reason is reason
    assert f"strategy {MOMO} of account {ACCT} (automatic)" in d.message
    assert engine.check(order(Side.BUY, 1.0, strategy="other", order_id="o2"), NOW, True).approved
    assert engine.check(order(Side.BUY, 1.0, order_id="o3"), NOW, True).approved
    if state is TradingState.REDUCING:  # strictly reducing orders of the strategy still pass
        assert engine.check(order(Side.SELL, 1.0, strategy=MOMO, order_id="o4"), NOW, True).approved


def test_release_reservations_when_strategy_of_account_halted_then_only_those() -> None:
    engine = engine_with_btc()
    reserve(engine, order_id="b1")
    reserve(engine, strategy=MOMO, order_id="s1")
    reserve(engine, strategy="other", order_id="s2")
    assert engine.release_reservations("strategy", MOMO, "someone-else") == 0
    assert engine.release_reservations("strategy", MOMO, ACCT) == 1
    pending = engine.book.accounts[ACCT].pending
    assert {oid for oid in ("b1", "s1", "s2") if oid in pending} == {"b1", "s2"}


def test_cancel_all_msg_when_strategy_of_account_halted_then_strategy_scope_both_ids() -> None:
    msg = cancel_all_msg(KEY, HALTED, 42, NOW + 5)
    assert msg is not None
    assert (msg.scope, msg.account_id, msg.strategy_id, msg.symbol) == (
        "strategy",
        ACCT,
        MOMO,
        None,
    )
    assert (msg.state, msg.triggered_by, msg.revision, msg.timestamp) == (
        TradingState.HALTED,
        "w0",
        42,
        NOW,
    )
    assert cancel_all_msg(KEY, REDUCING, 43, NOW) is None
