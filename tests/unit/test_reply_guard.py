"""Reply subjects: only accepted inboxes are answered; RISK_REPLY_PREFIXES is validated."""

from __future__ import annotations

import logging

import pytest

from risk_worker.adapters.reply_guard import ReplyGuard
from risk_worker.errors import ConfigError
from risk_worker.service.observability import DROP_REASONS
from risk_worker.service.settings import load_settings


def test_load_settings_when_reply_prefixes_given_then_a_tuple_in_order() -> None:
    s = load_settings({"RISK_REPLY_PREFIXES": " _INBOX_client., _INBOX_operator.x. ,"})
    assert s.reply_prefixes == ("_INBOX_client.", "_INBOX_operator.x.")
    assert load_settings({}).reply_prefixes == ()


@pytest.mark.parametrize(
    "value",
    [
        "_INBOX_client",  # no trailing dot: would also accept _INBOX_clientele.
        "$KV.risk_control.",
        "$SRV.",
        "_INBOX_client.,$JS.",
        "_INBOX.*.",
        "_INBOX.>.",
        "a b.",
        "a..b.",
        ".",
    ],
)
def test_load_settings_when_reply_prefix_bad_then_config_error_names_variable(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"RISK_REPLY_PREFIXES": value})
    assert info.value.variable == "RISK_REPLY_PREFIXES"


@pytest.mark.parametrize("prefix", ["_INBOX_worker.", "_INBOX_worker.abc."])
def test_load_settings_when_reply_prefix_covers_own_inbox_then_config_error(prefix: str) -> None:
    env = {"RISK_REPLY_PREFIXES": prefix, "RISK_NATS_INBOX_PREFIX": "_INBOX_worker"}
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == "RISK_REPLY_PREFIXES"
    assert "own inbox" in str(info.value)


def test_load_settings_when_reply_prefix_is_another_users_then_accepted() -> None:
    env = {"RISK_REPLY_PREFIXES": "_INBOX_workers.", "RISK_NATS_INBOX_PREFIX": "_INBOX_worker"}
    assert load_settings(env).reply_prefixes == ("_INBOX_workers.",)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("$KV.risk_control.trading_state.global", "system_subject"),
        ("$KV.risk_control.trading_state.account.ACC-1", "system_subject"),
        ("$SRV.PING", "system_subject"),
        ("$JS.API.STREAM.PURGE.KV_risk_control", "system_subject"),
        ("risk.alerts.emergency", "not_an_inbox"),
        ("_INBOX", "not_an_inbox"),
        ("_INBOX_other.abc", "not_an_inbox"),
        ("_INBOX_clientele.abc", "not_an_inbox"),
        ("", "no_reply"),
    ],
)
def test_guard_when_reply_not_under_an_accepted_prefix_then_refused_with_reason(
    reply: str, reason: str
) -> None:
    dropped: list[str] = []
    guard = ReplyGuard(("_INBOX_client.",), dropped.append)
    assert guard.accepts(reply, "risk.check.order") is False
    assert dropped == [reason]
    assert reason in DROP_REASONS


@pytest.mark.parametrize("reply", ["_INBOX.abc", "_INBOX.abc.1", "_INBOX_client.x.y"])
def test_guard_when_reply_under_an_accepted_prefix_then_accepted(reply: str) -> None:
    dropped: list[str] = []
    assert ReplyGuard(("_INBOX_client.",), dropped.append).accepts(reply, "x") is True
    assert dropped == []


@pytest.mark.parametrize("prefix", ["$KV.", "_INBOX_client"])
def test_guard_when_prefix_bad_then_value_error(prefix: str) -> None:
    with pytest.raises(ValueError, match="reply prefix"):
        ReplyGuard((prefix,), lambda _: None)


def test_guard_when_many_refused_then_one_log_line_per_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="risk_worker.adapters.reply_guard")
    guard = ReplyGuard((), lambda _: None)
    for i in range(100):
        guard.accepts(f"$KV.risk_control.trading_state.account.A{i}", "risk.check.order")
        guard.accepts("risk.alerts.emergency", "$SRV.PING")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "system_subject" in lines[0] and "$KV.risk_control" in lines[0]
    assert "not_an_inbox" in lines[1] and "$SRV.PING" in lines[1]
