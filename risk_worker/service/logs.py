"""Logging: JSON lines (or a readable console line) on stdout, with credentials redacted.

JSON mode writes one object per line: ``ts`` (ISO 8601 UTC, ms), ``level``, ``logger``,
``message``, every ``extra=`` field a caller gave (``order_id``, ``account_id``, ``reason``…)
and ``exc`` (the formatted traceback) when an exception is logged. Formatting never raises: a
value JSON cannot hold is written as its ``str``.

Every record passes :class:`RedactFilter` first: the password of any URL in the message, its
arguments, its extra fields or its traceback is replaced by ``***``.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import TextIO

import msgspec

_CREDENTIALS = re.compile(r"://([^/\s]*)@")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_ENCODER = msgspec.json.Encoder(enc_hook=str)
_HANDLER_NAME = "risk-worker"


def _hide(match: re.Match[str]) -> str:
    user, colon, _ = match.group(1).partition(":")
    return f"://{user}:***@" if colon else "://***@"


def redact_text(text: str) -> str:
    """``text`` with the credentials of each URL hidden.

    ``postgresql://user:pw@host`` → ``postgresql://user:***@host``, ``redis://:pw@host`` →
    ``redis://:***@host``, ``nats://token@host`` → ``nats://***@host``.
    """
    return _CREDENTIALS.sub(_hide, text) if "@" in text else text


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    try:
        text = str(value)
    except Exception:
        return value
    redacted = redact_text(text)
    return value if redacted == text else redacted


class RedactFilter(logging.Filter):
    """Hides URL credentials in a record's message, arguments, extra fields and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; always keeps it."""
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact_value(arg) for key, arg in record.args.items()}
        for key in record.__dict__.keys() - _STANDARD:
            record.__dict__[key] = _redact_value(record.__dict__[key])
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # arguments that do not match the format: keep both
        return f"{record.msg!s} {record.args!r}"


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k[0] != "_"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for its fields)."""

    def format(self, record: logging.LogRecord) -> str:
        """Encode ``record``; falls back to ``str`` for each value JSON cannot hold."""
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        body: dict[str, object] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        for key, value in _extras(record).items():
            body.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            body["exc"] = record.exc_text
        try:
            return _ENCODER.encode(body).decode()
        except Exception:  # e.g. a dict with keys JSON cannot hold
            safe = {
                key: value if isinstance(value, str) else _str(value) for key, value in body.items()
            }
            return _ENCODER.encode(safe).decode()


class ConsoleFormatter(logging.Formatter):
    """``2024-05-01 12:00:00,123 INFO    risk_worker.service.worker: message key=value …``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The line, then the extra fields as ``key=value``, then any traceback."""
        record.message = _message(record)
        record.asctime = self.formatTime(record)
        line = self.formatMessage(record)
        extras = " ".join(f"{key}={_str(value)}" for key, value in _extras(record).items())
        if extras:
            line = f"{line} {extras}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return f"{line}\n{record.exc_text}" if record.exc_text else line


def _str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def configure_logging(level: str, fmt: str | None, *, stream: TextIO | None = None) -> None:
    """Send the root logger's records to ``stream`` (stdout) as JSON lines or console lines.

    Replaces the handler a previous call installed; leaves other handlers alone.

    Args:
        level: DEBUG, INFO, WARNING or ERROR.
        fmt: ``"json"``, ``"console"``, or None/``""`` for console on a terminal, else JSON.
        stream: where to write (default: ``sys.stdout``).

    Raises:
        ValueError: ``fmt`` is none of these.
    """
    out = sys.stdout if stream is None else stream
    if not fmt:
        fmt = "console" if out.isatty() else "json"
    if fmt not in {"json", "console"}:
        raise ValueError(f"log format must be json or console, got {fmt!r}")
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(RedactFilter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
