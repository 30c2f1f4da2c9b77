"""`risk-worker tail` renders each message as one readable line."""

from __future__ import annotations

import msgspec
from nats.aio.msg import Msg

from risk_worker.adapters.operator import render, with_timestamp


def msg(subject: str, body: object) -> Msg:
    return Msg(_client=None, subject=subject, data=msgspec.json.encode(body))  # type: ignore[arg-type]


def test_render_when_metrics_then_one_line_with_key_figures() -> None:
    line = render(
        msg(
            "risk.metrics",
            {
                "account_id": "A1",
                "equity": 123456.789,
                "leverage": None,
                "drawdown_daily": 0.05,
                "drawdown_max": 0.1,
                "margin_ratio": 2.5,
                "risk_level": "MEDIUM",
                "trading_state": "ACTIVE",
                "stale_marks": True,
            },
        )
    )
    assert "\n" not in line
    assert line.startswith("risk.metrics A1 equity=123,456.79 lev=∞")
    assert "level=MEDIUM" in line and line.endswith("STALE")


def test_render_when_alert_or_state_change_then_says_who_and_why() -> None:
    alert = render(
        msg(
            "risk.alerts.critical",
            {"level": "critical", "account_id": "A1", "message": "Max Drawdown: drawdown_max 0.22"},
        )
    )
    assert alert == "risk.alerts.critical [critical] A1 Max Drawdown: drawdown_max 0.22"
    stop = render(
        msg(
            "risk.alerts.emergency",
            {
                "type": "emergency_stop",
                "account_id": None,
                "state": "HALTED",
                "triggered_by": "alice",
                "source": "operator",
                "reason": "incident",
            },
        )
    )
    assert stop == (
        "risk.alerts.emergency [emergency_stop] global → HALTED by alice (operator): incident"
    )


def test_render_when_not_json_then_raw_bytes_shown() -> None:
    raw = Msg(_client=None, subject="risk.x", data=b"\xff\x00garbage")  # type: ignore[arg-type]
    assert render(raw).startswith("risk.x b'")


def test_with_timestamp_when_absent_then_added_and_kept_when_present() -> None:
    assert msgspec.json.decode(with_timestamp('{"a": 1}'))["timestamp"] > 1_700_000_000_000
    assert msgspec.json.decode(with_timestamp('{"timestamp": 5}'))["timestamp"] == 5


def test_render_when_strategy_of_account_tripped_then_names_both() -> None:
    line = render(
        msg(
            "risk.alerts.emergency",
            {
                "type": "state_change",
                "scope": "strategy",
                "account_id": "A1",
                "strategy_id": "momo-1",
                "state": "REDUCING",
                "triggered_by": "w0",
                "source": "policy",
                "reason": "loss",
            },
        )
    )
    assert line == (
        "risk.alerts.emergency [state_change] strategy momo-1 of account A1 → REDUCING by w0"
        " (policy): loss"
    )
