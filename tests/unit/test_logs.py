"""Logging: JSON lines with extra fields and tracebacks, console lines, redacted credentials."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from risk_worker.service.logs import JsonFormatter, configure_logging, redact_text

DSN = "postgresql://risk:s3cret@db.internal:5432/risk"


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    """Where the configured handler writes; the root logger is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    yield stream
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_when_logging_then_one_object_per_line_with_the_fields(out: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=out)
    log = logging.getLogger("risk_worker.test")
    log.info("denied order %s", "o-1", extra={"order_id": "o-1", "account_id": "a-1"})
    log.debug("not shown")
    [record] = lines(out)
    assert record["level"] == "INFO"
    assert record["logger"] == "risk_worker.test"
    assert record["message"] == "denied order o-1"
    assert record["order_id"] == "o-1"
    assert record["account_id"] == "a-1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(record["ts"]))
    assert "exc" not in record


def test_json_when_an_exception_is_logged_then_exc_holds_the_traceback(out: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=out)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("t").exception("failed")
    [record] = lines(out)
    assert record["message"] == "failed"
    assert "ValueError: boom" in str(record["exc"])


def test_json_when_values_are_odd_then_still_writes_a_line(out: io.StringIO) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    configure_logging("INFO", "json", stream=out)
    log = logging.getLogger("t")
    log.info("odd", extra={"weird": {(1, 2): object()}, "bad": Unprintable(), "n": 2**80})
    [first] = lines(out)
    assert first["message"] == "odd"
    assert str(first["bad"]).startswith("<unprintable")


def test_json_when_the_arguments_do_not_match_the_format_then_keeps_both() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "%d of %d", (1,), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "%d of %d (1,)"


def test_redact_when_a_dsn_is_in_the_message_or_args_then_the_password_is_hidden(
    out: io.StringIO,
) -> None:
    configure_logging("INFO", "json", stream=out)
    log = logging.getLogger("t")
    log.info(f"connecting to {DSN}")
    log.info("connecting to %s", DSN)
    log.info("error: %s", ConnectionError(f"cannot reach {DSN}"), extra={"url": DSN})
    text = out.getvalue()
    assert "s3cret" not in text
    assert [r["message"] for r in lines(out)][:2] == [
        "connecting to postgresql://risk:***@db.internal:5432/risk"
    ] * 2
    assert lines(out)[2]["url"] == "postgresql://risk:***@db.internal:5432/risk"


def test_redact_when_an_exception_mentions_a_dsn_then_the_traceback_is_redacted(
    out: io.StringIO,
) -> None:
    configure_logging("INFO", "json", stream=out)
    try:
        raise OSError(f"connect {DSN} failed")
    except OSError:
        logging.getLogger("t").exception("pool failed")
    assert "s3cret" not in out.getvalue()
    assert "risk:***@db.internal" in str(lines(out)[0]["exc"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("nats://user:pw@h:4222", "nats://user:***@h:4222"),
        ("nats://token@h:4222", "nats://***@h:4222"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("nats://127.0.0.1:4222 and a@b", "nats://127.0.0.1:4222 and a@b"),
    ],
)
def test_redact_text_hides_credentials_and_keeps_the_user(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_console_when_logging_then_one_readable_line_with_extras(out: io.StringIO) -> None:
    configure_logging("INFO", "console", stream=out)
    log = logging.getLogger("risk_worker.service.worker")
    log.warning("halted %s", DSN, extra={"reason": "breaker"})
    [line] = out.getvalue().splitlines()
    assert "WARNING risk_worker.service.worker: halted postgresql://risk:***@db.internal" in line
    assert line.endswith("reason=breaker")


def test_configure_when_called_twice_then_one_handler_writes(out: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=out)
    configure_logging("INFO", None, stream=out)  # a StringIO is no terminal: JSON
    logging.getLogger("t").info("once")
    assert [r["message"] for r in lines(out)] == ["once"]


def test_configure_when_the_format_is_unknown_then_raises(out: io.StringIO) -> None:
    with pytest.raises(ValueError, match="json or console"):
        configure_logging("INFO", "xml", stream=out)
