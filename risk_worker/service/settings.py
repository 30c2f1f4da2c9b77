"""Settings: one frozen Struct read from ``RISK_*`` environment variables, validated at start.

A bad value raises :class:`~risk_worker.errors.ConfigError` naming the variable, so the process
stops before it connects to anything. Durations are given in seconds and kept in seconds.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from risk_worker import _core
from risk_worker.adapters.nats_auth import NatsAuth, load_nats_auth
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.types import TradingState
from risk_worker.domain.var_result import VarConfig
from risk_worker.errors import ConfigError
from risk_worker.service.setting_parsers import (
    _batch_size,
    _database_url,
    _day_reset,
    _decision_core,
    _fallback,
    _flag,
    _fraction,
    _level,
    _log_format,
    _nats_urls,
    _nonempty,
    _port,
    _positive_float,
    _positive_int,
    _rate,
    _rates,
    _readable_file,
    _redis_url,
    _replicas,
    _reply_prefixes,
    _trip_state,
)
from risk_worker.service.trading_day import DEFAULT_DAY_RESET, trading_day_function

T = TypeVar("T")


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every setting of the worker (variable = ``RISK_`` + the upper-cased name).

    Durations in seconds; rates and ratios as fractions. ``database_url`` holds a secret: it is
    never logged (use :func:`redact`).
    """

    nats_url: str = "nats://127.0.0.1:4222"
    nats_connect_timeout: float = 30.0
    worker_id: str = ""
    kv_bucket: str = "risk_control"
    kv_replicas: int = 1
    events_replicas: int = 1
    state_max_age: float = 2.0
    state_confirm_interval: float = 0.5
    mark_max_age: float = 30.0
    pending_ttl: float = 60.0
    breaker_threshold: int = 5
    breaker_window: float = 60.0
    monitor_interval: float = 1.0
    metrics_max_interval: float = 5.0
    metrics_change_threshold: float = 0.001
    alert_dedup_window: float = 300.0
    default_margin_rate: float = 0.10
    margin_rates: dict[str, float] = msgspec.field(default_factory=dict)
    max_request_bytes: int = 65_536
    log_level: str = "INFO"
    database_url: str = ""
    policy_fallback: str = ""
    policy_file: str = ""
    policy_reload_interval: float = 30.0
    events_max_age: float = 7 * 86_400.0
    event_queue_size: int = 100_000
    inputs_max_age: float = 86_400.0
    inputs_replicas: int = 1
    services_protocol: bool = True
    reply_prefixes: tuple[str, ...] = ()
    http_host: str = "0.0.0.0"
    http_port: int = 9103
    log_format: str = ""
    redis_url: str = ""
    snapshot_max_age: float = 60.0
    lease_ttl: float = 3.0
    tick_max_jump: float = 0.25
    tick_confirmations: int = 3
    max_symbols: int = 10_000
    auto_trip_state: TradingState = TradingState.REDUCING
    day_reset: str = DEFAULT_DAY_RESET
    drawdown_window: float = 300.0
    max_batch: int = 100
    var_sample_interval: int = 60
    var_window: int = 1_440
    var_min_samples: int = 120
    var_horizon: float = 86_400.0
    nats_auth: NatsAuth = msgspec.field(default_factory=NatsAuth)
    decision_core: str = "auto"
    """``RISK_DECISION_CORE``, read when ``risk_worker`` is imported (:mod:`risk_worker._core`)
    and checked against the core running by :func:`load_settings`."""

    def risk_config(self) -> RiskConfig:
        """The decision core's parameters (the trading day built from ``day_reset``).

        Raises:
            ValueError: ``day_reset`` does not parse (:func:`load_settings` checked it already).
        """
        return RiskConfig(
            default_margin_rate=self.default_margin_rate,
            margin_rates=dict(self.margin_rates),
            mark_max_age_ms=int(self.mark_max_age * 1000),
            pending_ttl_ms=int(self.pending_ttl * 1000),
            trading_day=trading_day_function(self.day_reset),
            drawdown_window_ms=max(1, int(self.drawdown_window * 1000)),
            var=VarConfig(
                self.var_sample_interval * 1000,
                self.var_window,
                self.var_min_samples,
                self.var_horizon,
            ),
        )


_PARSERS: dict[str, Callable[[str], Any]] = {
    "nats_url": _nats_urls,
    "nats_connect_timeout": _positive_float,
    "worker_id": _nonempty,
    "kv_bucket": _nonempty,
    "kv_replicas": _replicas,
    "events_replicas": _replicas,
    "state_max_age": _positive_float,
    "state_confirm_interval": _positive_float,
    "mark_max_age": _positive_float,
    "pending_ttl": _positive_float,
    "breaker_threshold": _positive_int,
    "breaker_window": _positive_float,
    "monitor_interval": _positive_float,
    "metrics_max_interval": _positive_float,
    "metrics_change_threshold": _fraction,
    "alert_dedup_window": _positive_float,
    "default_margin_rate": _rate,
    "margin_rates": _rates,
    "max_request_bytes": _positive_int,
    "log_level": _level,
    "database_url": _database_url,
    "policy_fallback": _fallback,
    "policy_file": _readable_file,
    "policy_reload_interval": _positive_float,
    "events_max_age": _positive_float,
    "event_queue_size": _positive_int,
    "inputs_max_age": _positive_float,
    "inputs_replicas": _replicas,
    "services_protocol": _flag,
    "reply_prefixes": _reply_prefixes,
    "http_host": _nonempty,
    "http_port": _port,
    "log_format": _log_format,
    "redis_url": _redis_url,
    "snapshot_max_age": _positive_float,
    "lease_ttl": _positive_float,
    "tick_max_jump": _positive_float,
    "tick_confirmations": _positive_int,
    "max_symbols": _positive_int,
    "auto_trip_state": _trip_state,
    "day_reset": _day_reset,
    "drawdown_window": _positive_float,
    "max_batch": _batch_size,
    "var_sample_interval": _positive_int,
    "var_window": _positive_int,
    "var_min_samples": _positive_int,
    "var_horizon": _positive_float,
    "decision_core": _decision_core,
}


def redact(url: str) -> str:
    """A DSN with its password replaced by ``***``, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def redact_servers(urls: str) -> str:
    """``RISK_NATS_URL``'s servers for messages: in each, a password (``user:***@``) or a token
    (``***@``) hidden; comma-separated like the setting."""
    out = []
    for url in urls.split(","):
        scheme, sep, rest = url.strip().partition("://")
        credentials, at, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0] + ":" if ":" in credentials else ""
        out.append(f"{scheme}://{user}***@{host}" if sep and at else url.strip())
    return ",".join(out)


_SECRETS = frozenset({"database_url", "redis_url"})
"""Settings that may hold a password: also readable from ``<VARIABLE>_FILE`` (Docker secrets)."""


def _secret(env: Mapping[str, str], variable: str) -> str | None:
    """``variable``'s value, or the content of the file ``<variable>_FILE`` names."""
    path = env.get(variable + "_FILE")
    if path is None:
        return env.get(variable)
    if env.get(variable):
        raise ConfigError(variable, f"set either {variable} or {variable}_FILE, not both")
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise ConfigError(variable + "_FILE", f"cannot read {path}: {exc.strerror}") from None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``RISK_*`` variables (``os.environ`` by default).

    Raises:
        ConfigError: a variable does not parse, or the values contradict each other
            (e.g. the confirm interval is not shorter than the state's maximum age).
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, parse in _PARSERS.items():
        variable = "RISK_" + name.upper()
        raw = _secret(env, variable) if name in _SECRETS else env.get(variable)
        if raw is None:
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            got = "" if name in _SECRETS or name == "nats_url" else f" (got {raw!r})"
            raise ConfigError(variable, f"{exc}{got}") from None
    values.setdefault("worker_id", f"{socket.gethostname()}-{os.getpid()}")
    values["nats_auth"] = load_nats_auth(env)
    settings = Settings(**values)
    if settings.lease_ttl <= 2 * settings.monitor_interval:
        raise ConfigError(
            "RISK_LEASE_TTL",
            f"must be more than two monitor intervals ({2 * settings.monitor_interval} s)",
        )
    if settings.policy_file and settings.database_url:
        raise ConfigError(
            "RISK_POLICY_FILE",
            "policies come from PostgreSQL when RISK_DATABASE_URL is set; set one, not both",
        )
    own = settings.nats_auth.inbox_prefix
    for prefix in settings.reply_prefixes if own else ():
        if f"{own}.".startswith(prefix) or prefix.startswith(f"{own}."):
            raise ConfigError(
                "RISK_REPLY_PREFIXES",
                f"{prefix!r} would answer into this worker's own inbox (RISK_NATS_INBOX_PREFIX)",
            )
    if settings.var_min_samples >= settings.var_window:
        raise ConfigError(
            "RISK_VAR_MIN_SAMPLES",
            f"must be less than RISK_VAR_WINDOW ({settings.var_window}): a window of n samples "
            "holds at most n - 1 returns",
        )
    if settings.state_confirm_interval >= settings.state_max_age:
        raise ConfigError(
            "RISK_STATE_CONFIRM_INTERVAL",
            f"must be shorter than RISK_STATE_MAX_AGE ({settings.state_max_age} s)",
        )
    _check_core(settings.decision_core, _core.STATUS)
    return settings


def _check_core(requested: str, status: _core.CoreStatus) -> None:
    """Raises when the decision core running is not the one ``RISK_DECISION_CORE`` asks for:
    ``compiled`` without a current compiled core, or a core other than the one chosen when
    ``risk_worker`` was imported (a setting given in a mapping, not the process environment)."""
    if requested in {"auto", status.active}:
        return
    if requested == "compiled":
        why = status.reason if status.requested != "pure" else "the pure core is already loaded"
        raise ConfigError(_core.SETTING, f"the compiled decision core cannot run: {why}")
    raise ConfigError(
        _core.SETTING,
        f"the {status.active} decision core is already loaded: the variable is read when "
        "risk_worker is first imported, so set it in the process's environment",
    )
