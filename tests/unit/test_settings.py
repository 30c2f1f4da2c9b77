"""Settings come from RISK_* variables; a bad value names its variable."""

from __future__ import annotations

import pytest

from risk_worker.adapters.nats_auth import server_list
from risk_worker.domain.types import TradingState
from risk_worker.domain.var_result import VarConfig
from risk_worker.errors import ConfigError
from risk_worker.service.settings import Settings, load_settings, redact_servers


def test_load_settings_when_nothing_set_then_defaults() -> None:
    s = load_settings({})
    assert s.nats_url == "nats://127.0.0.1:4222"
    assert (s.state_max_age, s.mark_max_age, s.pending_ttl) == (2.0, 30.0, 60.0)
    assert (s.breaker_threshold, s.breaker_window, s.alert_dedup_window) == (5, 60.0, 300.0)
    assert s.worker_id  # hostname-pid
    assert (s.metrics_max_interval, s.metrics_change_threshold) == (5.0, 0.001)
    cfg = s.risk_config()
    assert (cfg.mark_max_age_ms, cfg.pending_ttl_ms, cfg.default_margin_rate) == (
        30_000,
        60_000,
        0.10,
    )


def test_load_settings_when_values_given_then_parsed() -> None:
    s = load_settings(
        {
            "RISK_MARGIN_RATES": "BTCUSDT=0.05, ETHUSDT=0.1",
            "RISK_STATE_MAX_AGE": "3",
            "RISK_LOG_LEVEL": "debug",
            "RISK_WORKER_ID": "w1",
            "RISK_METRICS_MAX_INTERVAL": "2.5",
            "RISK_METRICS_CHANGE_THRESHOLD": "0",
        }
    )
    assert (s.metrics_max_interval, s.metrics_change_threshold) == (2.5, 0.0)
    assert s.margin_rates == {"BTCUSDT": 0.05, "ETHUSDT": 0.1}
    assert s.risk_config().margin_rate("BTCUSDT") == 0.05
    assert s.risk_config().margin_rate("XRPUSDT") == 0.10
    assert (s.state_max_age, s.log_level, s.worker_id) == (3.0, "DEBUG", "w1")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RISK_STATE_MAX_AGE", "abc"),
        ("RISK_STATE_MAX_AGE", "-1"),
        ("RISK_MARK_MAX_AGE", "nan"),
        ("RISK_PENDING_TTL", "inf"),
        ("RISK_BREAKER_THRESHOLD", "0"),
        ("RISK_BREAKER_THRESHOLD", "2.5"),
        ("RISK_DEFAULT_MARGIN_RATE", "1.5"),
        ("RISK_MARGIN_RATES", "BTCUSDT"),
        ("RISK_MARGIN_RATES", "BTCUSDT=0"),
        ("RISK_LOG_LEVEL", "LOUD"),
        ("RISK_NATS_URL", "  "),
        ("RISK_STATE_CONFIRM_INTERVAL", "5"),  # not shorter than RISK_STATE_MAX_AGE
        ("RISK_AUTO_TRIP_STATE", "ACTIVE"),  # an automatic trip that stops nothing
        ("RISK_AUTO_TRIP_STATE", "halt"),
        ("RISK_METRICS_MAX_INTERVAL", "0"),
        ("RISK_METRICS_MAX_INTERVAL", "inf"),
        ("RISK_METRICS_MAX_INTERVAL", "5s"),
        ("RISK_METRICS_CHANGE_THRESHOLD", "-0.001"),
        ("RISK_METRICS_CHANGE_THRESHOLD", "1"),
        ("RISK_METRICS_CHANGE_THRESHOLD", "nan"),
        ("RISK_METRICS_CHANGE_THRESHOLD", "0.1%"),
    ],
)
def test_load_settings_when_value_bad_then_config_error_names_variable(
    variable: str, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value})
    assert caught.value.variable == variable
    assert variable in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, TradingState.REDUCING),
        ("halted", TradingState.HALTED),
        (" REDUCING ", TradingState.REDUCING),
    ],
)
def test_load_settings_when_auto_trip_state_given_or_not_then_reducing_by_default(
    value: str | None, expected: TradingState
) -> None:
    env = {} if value is None else {"RISK_AUTO_TRIP_STATE": value}
    assert load_settings(env).auto_trip_state is expected


def test_settings_when_unknown_field_then_refused() -> None:
    with pytest.raises(TypeError):
        Settings(no_such_setting=1)  # type: ignore[call-arg]


def test_load_settings_when_database_url_in_a_file_then_read_and_never_both(tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "dsn"
    secret.write_text("postgresql://risk:s3cret@db:5432/risk\n")
    s = load_settings({"RISK_DATABASE_URL_FILE": str(secret)})
    assert s.database_url == "postgresql://risk:s3cret@db:5432/risk"
    with pytest.raises(ConfigError) as both:
        load_settings(
            {"RISK_DATABASE_URL_FILE": str(secret), "RISK_DATABASE_URL": "postgresql://x"}
        )
    assert both.value.variable == "RISK_DATABASE_URL"
    with pytest.raises(ConfigError) as missing:
        load_settings({"RISK_REDIS_URL_FILE": str(tmp_path / "absent")})
    assert missing.value.variable == "RISK_REDIS_URL_FILE"
    assert "s3cret" not in str(missing.value)


def test_load_settings_when_tick_filter_and_symbol_limit_set_then_parsed() -> None:
    s = load_settings(
        {"RISK_TICK_MAX_JUMP": "0.1", "RISK_TICK_CONFIRMATIONS": "5", "RISK_MAX_SYMBOLS": "500"}
    )
    assert (s.tick_max_jump, s.tick_confirmations, s.max_symbols) == (0.1, 5, 500)
    assert (Settings().tick_max_jump, Settings().tick_confirmations) == (0.25, 3)
    assert Settings().max_symbols == 10_000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RISK_TICK_MAX_JUMP", "0"),
        ("RISK_TICK_MAX_JUMP", "inf"),
        ("RISK_TICK_MAX_JUMP", "nan"),
        ("RISK_TICK_CONFIRMATIONS", "0"),
        ("RISK_TICK_CONFIRMATIONS", "x"),
        ("RISK_MAX_SYMBOLS", "0"),
        ("RISK_MAX_SYMBOLS", "-3"),
    ],
)
def test_load_settings_when_tick_filter_value_bad_then_config_error_names_variable(
    variable: str, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value})
    assert caught.value.variable == variable


def test_load_settings_when_var_settings_given_then_parsed_into_the_risk_config() -> None:
    s = load_settings(
        {
            "RISK_VAR_SAMPLE_INTERVAL": "30",
            "RISK_VAR_WINDOW": "500",
            "RISK_VAR_MIN_SAMPLES": "60",
            "RISK_VAR_HORIZON": "3600",
        }
    )
    var = s.risk_config().var
    assert (var.sample_interval_ms, var.window, var.min_samples, var.horizon_s) == (
        30_000,
        500,
        60,
        3_600.0,
    )
    assert Settings().risk_config().var == VarConfig()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"RISK_VAR_SAMPLE_INTERVAL": "0"}, "RISK_VAR_SAMPLE_INTERVAL"),
        ({"RISK_VAR_SAMPLE_INTERVAL": "1.5"}, "RISK_VAR_SAMPLE_INTERVAL"),
        ({"RISK_VAR_WINDOW": "-3"}, "RISK_VAR_WINDOW"),
        ({"RISK_VAR_HORIZON": "inf"}, "RISK_VAR_HORIZON"),
        ({"RISK_VAR_MIN_SAMPLES": "0"}, "RISK_VAR_MIN_SAMPLES"),
        ({"RISK_VAR_WINDOW": "100"}, "RISK_VAR_MIN_SAMPLES"),  # 120 returns never fit
    ],
)
def test_load_settings_when_var_setting_bad_then_config_error_names_variable(
    env: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert caught.value.variable == variable


def test_load_settings_when_several_nats_servers_then_stripped_and_comma_joined() -> None:
    s = load_settings(
        {"RISK_NATS_URL": " nats://10.0.0.1:4222 , tls://user:pw@nats-2:4223,nats://[::1]:4224 "}
    )
    assert s.nats_url == "nats://10.0.0.1:4222,tls://user:pw@nats-2:4223,nats://[::1]:4224"
    assert server_list(s.nats_url) == [
        "nats://10.0.0.1:4222",
        "tls://user:pw@nats-2:4223",
        "nats://[::1]:4224",
    ]


@pytest.mark.parametrize(
    "value",
    [
        "nats://a:4222,,nats://b:4222",  # an empty item
        "nats://a:4222,b:4222",  # no scheme
        "http://a:4222",
        "nats://a",  # no port
        "nats://:4222",  # no host
        "nats://a:99999",
        "nats://a:4222/path",
        "nats://a:4222 nats://b:4222",  # spaces, not commas
        "nats://user:s3cret@a:notaport",
    ],
)
def test_load_settings_when_a_nats_server_malformed_then_refused_naming_the_variable(
    value: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"RISK_NATS_URL": value})
    assert caught.value.variable == "RISK_NATS_URL"
    assert "RISK_NATS_URL" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_load_settings_replicas_default_one_and_validated() -> None:
    s = load_settings({})
    assert (s.kv_replicas, s.events_replicas) == (1, 1)
    s = load_settings({"RISK_KV_REPLICAS": "3", "RISK_EVENTS_REPLICAS": "5"})
    assert (s.kv_replicas, s.events_replicas) == (3, 5)
    for variable in ("RISK_KV_REPLICAS", "RISK_EVENTS_REPLICAS"):
        for bad in ("0", "6", "-1", "2.5", "three"):
            with pytest.raises(ConfigError) as caught:
                load_settings({variable: bad})
            assert caught.value.variable == variable


def test_redact_servers_hides_passwords_and_tokens_in_each_server() -> None:
    urls = "nats://alice:s3cret@a:4222, tls://tok3n@b:4222,nats://c:4222"
    assert redact_servers(urls) == "nats://alice:***@a:4222,tls://***@b:4222,nats://c:4222"
    assert redact_servers("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
