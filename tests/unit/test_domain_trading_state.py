"""Trading-state copy: revision ordering, deletes, effective state, local writes and KV echo."""

from __future__ import annotations

import pytest

from risk_worker.domain.trading_state import (
    GLOBAL_KEY,
    StateValue,
    TradingStates,
    account_key,
    auto_key,
    scope_of_key,
)
from risk_worker.domain.types import StateSource, TradingState

ACTIVE = StateValue(TradingState.ACTIVE, "resume")
REDUCING = StateValue(TradingState.REDUCING, "wind down")
HALTED = StateValue(TradingState.HALTED, "stop")
A1 = account_key("a1")
AUTO1 = auto_key("a1")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("trading_state.global", ("global", None)),
        ("trading_state.account.a1", ("account", "a1")),
        ("trading_state.auto.a1", ("auto", "a1")),
        ("trading_state.account.", ("unknown", None)),
        ("trading_state.other", ("unknown", None)),
        ("policies.x", None),
    ],
)
def test_scope_of_key_when_key_given_then_its_scope_or_none(key, expected):
    assert scope_of_key(key) == expected


@pytest.mark.parametrize(
    ("first_rev", "second_rev", "second_applied", "expected_state"),
    [
        (3, 4, True, TradingState.ACTIVE),  # newer revision wins
        (3, 3, False, TradingState.HALTED),  # same revision ignored
        (3, 2, False, TradingState.HALTED),  # older revision ignored
    ],
)
def test_apply_when_second_revision_then_only_newer_replaces(
    first_rev, second_rev, second_applied, expected_state
):
    states = TradingStates()
    assert states.apply(A1, HALTED, first_rev) is True
    assert states.apply(A1, ACTIVE, second_rev) is second_applied
    assert states.effective("a1").state is expected_state
    assert states.revision(A1) == max(first_rev, second_rev)


def test_apply_when_key_not_a_trading_state_key_then_ignored():
    states = TradingStates()
    assert states.apply("something.else", HALTED, 1) is False
    assert states.revision("something.else") == 0


@pytest.mark.parametrize("key", [GLOBAL_KEY, A1])
def test_apply_when_deleted_then_scope_becomes_active(key):
    states = TradingStates()
    states.apply(key, HALTED, 1)
    assert states.effective("a1").state is TradingState.HALTED
    assert states.apply(key, None, 2) is True
    assert states.effective("a1").state is TradingState.ACTIVE
    assert states.global_value is None
    assert states.account_value("a1") is None


def test_apply_when_delete_has_older_revision_then_kept():
    states = TradingStates()
    states.apply(A1, HALTED, 5)
    assert states.apply(A1, None, 4) is False
    assert states.effective("a1").state is TradingState.HALTED


@pytest.mark.parametrize(
    ("global_value", "account_value", "expected_state", "expected_scope"),
    [
        (None, None, TradingState.ACTIVE, "global"),
        (REDUCING, None, TradingState.REDUCING, "global"),
        (None, REDUCING, TradingState.REDUCING, "account"),
        (HALTED, REDUCING, TradingState.HALTED, "global"),
        (REDUCING, HALTED, TradingState.HALTED, "account"),
        (REDUCING, REDUCING, TradingState.REDUCING, "global"),  # tie: global
        (HALTED, HALTED, TradingState.HALTED, "global"),
        (ACTIVE, HALTED, TradingState.HALTED, "account"),
        (HALTED, ACTIVE, TradingState.HALTED, "global"),
    ],
)
def test_effective_when_global_and_account_set_then_more_severe_wins(
    global_value, account_value, expected_state, expected_scope
):
    states = TradingStates()
    if global_value is not None:
        states.apply(GLOBAL_KEY, global_value, 1)
    if account_value is not None:
        states.apply(A1, account_value, 1)
    eff = states.effective("a1")
    assert (eff.state, eff.scope) == (expected_state, expected_scope)


def test_effective_when_other_account_halted_then_this_one_active():
    states = TradingStates()
    states.apply(account_key("a2"), HALTED, 1)
    assert states.effective("a1").state is TradingState.ACTIVE
    assert states.halted_accounts() == ["a2"]


def test_set_local_when_written_then_effective_at_once_and_kv_echo_applies():
    states = TradingStates()
    states.apply(A1, REDUCING, 7)
    trip = StateValue(TradingState.HALTED, "breaker", "w1", 1, StateSource.CIRCUIT_BREAKER)
    states.set_local(A1, trip)
    assert states.effective("a1").state is TradingState.HALTED
    assert states.revision(A1) == 7  # the held revision is kept
    # a late delivery of an older entry cannot roll the local write back
    assert states.apply(A1, REDUCING, 7) is False
    assert states.effective("a1").state is TradingState.HALTED
    # the KV echo of the write (next revision) is applied
    assert states.apply(A1, trip, 8) is True
    assert states.effective("a1").value == trip
    assert states.revision(A1) == 8


def test_set_local_when_key_not_trading_state_then_ignored():
    states = TradingStates()
    states.set_local("other", HALTED)
    assert states.effective("a1").state is TradingState.ACTIVE


# Operators' and automatic keys (issue 10, item 3): the most restrictive of them is in force.


@pytest.mark.parametrize(
    ("global_value", "operator_value", "auto_value", "expected_state", "expected_scope"),
    [
        (None, None, REDUCING, TradingState.REDUCING, "account (automatic)"),
        (None, HALTED, REDUCING, TradingState.HALTED, "account"),
        (None, REDUCING, HALTED, TradingState.HALTED, "account (automatic)"),
        (None, REDUCING, REDUCING, TradingState.REDUCING, "account"),  # tie: the operator's
        (REDUCING, None, HALTED, TradingState.HALTED, "account (automatic)"),
        (HALTED, None, REDUCING, TradingState.HALTED, "global"),
        (None, ACTIVE, HALTED, TradingState.HALTED, "account (automatic)"),
        (None, HALTED, ACTIVE, TradingState.HALTED, "account"),
    ],
)
def test_effective_when_operator_and_automatic_keys_set_then_most_restrictive_wins(
    global_value, operator_value, auto_value, expected_state, expected_scope
):
    states = TradingStates()
    for key, value in ((GLOBAL_KEY, global_value), (A1, operator_value), (AUTO1, auto_value)):
        if value is not None:
            states.apply(key, value, 1)
    eff = states.effective("a1")
    assert (eff.state, eff.scope) == (expected_state, expected_scope)


def test_apply_when_automatic_key_cleared_then_operator_halt_stays():
    states = TradingStates()
    states.apply(A1, HALTED, 1)
    states.apply(AUTO1, REDUCING, 2)
    assert states.apply(AUTO1, ACTIVE, 3) is True
    assert states.effective("a1").state is TradingState.HALTED
    assert states.auto_value("a1") is None
    assert states.account_severity("a1") == 2


@pytest.mark.parametrize(
    "key", ["trading_state.other", "trading_state.account.", "trading_state.x.a1"]
)
def test_apply_when_unknown_trading_state_key_restrictive_then_every_account_restricted(key):
    states = TradingStates()
    assert states.apply(key, REDUCING, 1) is True
    assert states.effective("a1").state is TradingState.REDUCING
    assert states.effective("any").state is TradingState.REDUCING
    states.apply(GLOBAL_KEY, ACTIVE, 2)  # clearing the global key does not clear it
    assert states.effective("a1").state is TradingState.REDUCING
    assert states.apply(key, ACTIVE, 3) is True
    assert states.effective("a1").state is TradingState.ACTIVE


def test_cleared_at_when_active_written_to_account_keys_then_latest_writer_time():
    states = TradingStates()
    assert states.cleared_at("a1") == 0
    states.apply(AUTO1, StateValue(TradingState.REDUCING, "dd", "w1", 100), 1)
    states.apply(AUTO1, StateValue(TradingState.ACTIVE, "ok", "bob", 200), 2)
    states.apply(A1, StateValue(TradingState.ACTIVE, "ok", "bob", 150), 3)
    states.apply(GLOBAL_KEY, StateValue(TradingState.ACTIVE, "ok", "bob", 900), 4)
    assert states.cleared_at("a1") == 200


def test_reset_when_bucket_recreated_then_lower_revision_applies():
    states = TradingStates()
    states.apply(GLOBAL_KEY, ACTIVE, 7)
    assert states.apply(GLOBAL_KEY, HALTED, 1) is False  # what a stale copy would do
    states.reset()
    assert states.revision(GLOBAL_KEY) == 0
    assert states.apply(GLOBAL_KEY, HALTED, 1) is True
    assert states.effective("a1").state is TradingState.HALTED
