"""Parsers of the ``RISK_*`` values: each takes the raw text and returns the value or raises
``ValueError`` with a sentence (settings.py names the variable around it).
"""

from __future__ import annotations

import math
import os
from urllib.parse import urlsplit

from risk_worker import _core
from risk_worker.domain.types import TradingState
from risk_worker.service.trading_day import parse_day_reset

MAX_BATCH_LIMIT = 1_000
"""Most orders ``RISK_MAX_BATCH`` may allow in one ``risk.check.batch`` (each batch is decided
in one go on the event loop, so its size bounds how long other checks wait)."""

MAX_REPLICAS = 5
"""Most replicas JetStream keeps of a stream (a cluster of up to five servers)."""


def _positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a finite number > 0")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not (0 < value <= 1):
        raise ValueError("must be a fraction in (0, 1]")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not (0 <= value < 1):
        raise ValueError("must be a fraction in [0, 1)")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be an integer ≥ 1")
    return value


def _rates(text: str) -> dict[str, float]:
    rates: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        symbol, sep, rate = item.partition("=")
        if not sep or not symbol.strip():
            raise ValueError(f"expected SYMBOL=RATE items separated by commas, got {item!r}")
        rates[symbol.strip()] = _rate(rate)
    return rates


def _level(text: str) -> str:
    level = text.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return level


def _database_url(text: str) -> str:
    url = text.strip()
    if url and not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql:// DSN")
    return url


def _fallback(text: str) -> str:
    value = text.strip().lower()
    if value not in {"", "defaults"}:
        raise ValueError("must be empty or 'defaults'")
    return value


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number 0-65535 (0 picks a free one)")
    return value


def _log_format(text: str) -> str:
    value = text.strip().lower()
    if value not in {"", "json", "console"}:
        raise ValueError("must be json or console (empty: console on a terminal, else json)")
    return value


def _decision_core(text: str) -> str:
    value = text.strip().lower() or "auto"
    if value not in _core.CHOICES:
        raise ValueError("must be auto, compiled or pure")
    return value


def _redis_url(text: str) -> str:
    url = text.strip()
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis:// URL")
    return url


def _readable_file(text: str) -> str:
    path = text.strip()
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ValueError("must name a readable file")
    return path


def _reply_prefixes(text: str) -> tuple[str, ...]:
    """Comma-separated inbox prefixes (beside ``_INBOX.``) whose reply subjects are answered."""
    prefixes: list[str] = []
    for prefix in filter(None, (part.strip() for part in text.split(","))):
        if prefix.startswith("$") or not prefix.endswith("."):
            raise ValueError(f"{prefix!r}: each prefix must end with '.' and not start with '$'")
        if not all(part and not set(part) & set("*> \t\r\n") for part in prefix[:-1].split(".")):
            raise ValueError(f"{prefix!r}: each prefix must be subject tokens without wildcards")
        prefixes.append(prefix)
    return tuple(prefixes)


def _trip_state(text: str) -> TradingState:
    value = text.strip().upper()
    if value not in {TradingState.REDUCING, TradingState.HALTED}:
        raise ValueError("must be REDUCING or HALTED")
    return TradingState(value)


def _day_reset(text: str) -> str:
    reset, name, _ = parse_day_reset(text)
    return f"{reset:%H:%M} {name}"


def _batch_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_BATCH_LIMIT:
        raise ValueError(f"must be an integer in [1, {MAX_BATCH_LIMIT}]")
    return value


def _nonempty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _replicas(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_REPLICAS:
        raise ValueError(f"must be an integer in [1, {MAX_REPLICAS}] (3 on a cluster of three)")
    return value


def _nats_urls(text: str) -> str:
    """One server URL or several separated by commas: each ``nats://`` or ``tls://``
    (``user:password@`` allowed), with a host and a port; returned stripped, comma-joined."""
    urls = [part.strip() for part in text.split(",")]
    if not any(urls):
        raise ValueError("must not be empty")
    for url in urls:
        shown = url.rpartition("@")[2] if "@" in url else url  # never a password in a message
        if not url:
            raise ValueError("an empty server between commas")
        parts = urlsplit(url)
        if parts.scheme not in {"nats", "tls"} or "://" not in url:
            raise ValueError(f"{shown!r}: each server must be nats://HOST:PORT or tls://HOST:PORT")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or port == 0 or parts.path not in {"", "/"}:
            raise ValueError(f"{shown!r}: each server must be nats://HOST:PORT or tls://HOST:PORT")
    return ",".join(urls)
