"""NATS security settings: RISK_NATS_* parsing, the nats.connect options, error sentences."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import nats.errors
import nkeys
import pytest
from rich.pretty import pretty_repr

from risk_worker.adapters.nats_auth import (
    NatsAuth,
    connect_options,
    describe_connect_error,
    load_nats_auth,
)
from risk_worker.errors import ConfigError, ServerUnavailableError
from tests.tls_fixtures import TlsFiles, make_tls_files, new_keypair, write_creds

SECRET = "s3cret-Value-42"


def _raises(env: dict[str, str], variable: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_nats_auth(env)
    assert caught.value.variable == variable, str(caught.value)
    assert SECRET not in str(caught.value)
    return caught.value


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "user.nk"
    path.write_bytes(new_keypair(nkeys.PREFIX_BYTE_USER).seed + b"\n")
    return path


def test_load_when_nothing_or_blanks_set_then_empty_and_no_options() -> None:
    assert load_nats_auth({}) == NatsAuth()
    assert load_nats_auth({"RISK_NATS_USER": " ", "RISK_NATS_TOKEN": ""}) == NatsAuth()
    assert connect_options(NatsAuth()) == {}


def test_load_when_user_password_then_options_carry_them() -> None:
    auth = load_nats_auth({"RISK_NATS_USER": "worker", "RISK_NATS_PASSWORD": SECRET})
    assert connect_options(auth) == {"user": "worker", "password": SECRET}


@pytest.mark.parametrize(("name", "option"), [("PASSWORD", "password"), ("TOKEN", "token")])
def test_load_when_secret_file_then_read_and_stripped(
    tmp_path: Path, name: str, option: str
) -> None:
    (tmp_path / "secret").write_text(f"  {SECRET}\n")
    env = {f"RISK_NATS_{name}_FILE": str(tmp_path / "secret")}
    env |= {"RISK_NATS_USER": "worker"} if name == "PASSWORD" else {}
    assert connect_options(load_nats_auth(env))[option] == SECRET


@pytest.mark.parametrize("name", ["PASSWORD", "TOKEN"])
def test_load_when_value_and_file_both_set_then_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "secret").write_text(SECRET)
    env = {f"RISK_NATS_{name}": SECRET, f"RISK_NATS_{name}_FILE": str(tmp_path / "secret")}
    _raises(env | {"RISK_NATS_USER": "worker"}, f"RISK_NATS_{name}")


@pytest.mark.parametrize("contents", [None, b"", b"\xff\xfe\x00bad"])
def test_load_when_secret_file_unreadable_or_empty_then_error_names_file_variable(
    tmp_path: Path, contents: bytes | None
) -> None:
    path = tmp_path / "token"
    if contents is not None:
        path.write_bytes(contents)
    error = _raises({"RISK_NATS_TOKEN_FILE": str(path)}, "RISK_NATS_TOKEN_FILE")
    assert str(path) in str(error)


def test_load_when_password_without_user_or_user_without_password_then_error() -> None:
    _raises({"RISK_NATS_PASSWORD": SECRET}, "RISK_NATS_PASSWORD")
    _raises({"RISK_NATS_USER": "worker"}, "RISK_NATS_USER")


def test_load_when_cert_without_key_or_key_without_cert_then_error(tls: TlsFiles) -> None:
    _raises({"RISK_NATS_TLS_CERT": str(tls.client_cert)}, "RISK_NATS_TLS_CERT")
    _raises({"RISK_NATS_TLS_KEY": str(tls.client_key)}, "RISK_NATS_TLS_KEY")


@pytest.mark.parametrize(
    "variable",
    [
        "RISK_NATS_NKEY_SEED_FILE",
        "RISK_NATS_CREDS_FILE",
        "RISK_NATS_TLS_CA",
        "RISK_NATS_TLS_CERT",
        "RISK_NATS_TLS_KEY",
    ],
)
def test_load_when_named_file_missing_then_error_names_variable(
    tmp_path: Path, tls: TlsFiles, variable: str
) -> None:
    env = {"RISK_NATS_TLS_CERT": str(tls.client_cert), "RISK_NATS_TLS_KEY": str(tls.client_key)}
    env = (env if "TLS_CERT" in variable or "TLS_KEY" in variable else {}) | {
        variable: str(tmp_path / "absent.pem")
    }
    assert "absent.pem" in str(_raises(env, variable))


@pytest.mark.parametrize("kind", ["garbage", "account seed"])
def test_load_when_seed_file_not_a_user_seed_then_error_without_contents(
    tmp_path: Path, kind: str
) -> None:
    account_seed = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT).seed.decode()
    content = SECRET if kind == "garbage" else account_seed
    (tmp_path / "seed").write_text(content)
    variable = "RISK_NATS_NKEY_SEED_FILE"
    error = _raises({variable: str(tmp_path / "seed")}, variable)
    assert "no valid user NKEY seed" in str(error) and content not in str(error)


def test_load_when_creds_file_malformed_then_error(tmp_path: Path) -> None:
    (tmp_path / "bad.creds").write_text(f"-----BEGIN USER NKEY SEED-----\n{SECRET}\n")
    error = _raises({"RISK_NATS_CREDS_FILE": str(tmp_path / "bad.creds")}, "RISK_NATS_CREDS_FILE")
    assert "BEGIN NATS USER JWT" in str(error)


@pytest.mark.parametrize(
    ("methods", "variable"),
    [
        (("TOKEN", "USER"), "RISK_NATS_USER"),
        (("TOKEN", "NKEY_SEED_FILE"), "RISK_NATS_NKEY_SEED_FILE"),
        (("USER", "CREDS_FILE"), "RISK_NATS_CREDS_FILE"),
        (("NKEY_SEED_FILE", "CREDS_FILE"), "RISK_NATS_CREDS_FILE"),
    ],
)
def test_load_when_two_methods_set_then_error(
    tmp_path: Path, seed_file: Path, methods: tuple[str, str], variable: str
) -> None:
    creds = write_creds(tmp_path / "w.creds", new_keypair(nkeys.PREFIX_BYTE_ACCOUNT))
    values = {"TOKEN": SECRET, "USER": "worker", "NKEY_SEED_FILE": str(seed_file)}
    values["CREDS_FILE"] = str(creds)
    env = {f"RISK_NATS_{m}": values[m] for m in methods}
    env |= {"RISK_NATS_PASSWORD": SECRET} if "USER" in methods else {}
    assert "conflicts with" in str(_raises(env, variable))


def test_options_when_seed_creds_hostname_inbox_then_nats_py_names(
    tmp_path: Path, seed_file: Path
) -> None:
    env = {"RISK_NATS_NKEY_SEED_FILE": str(seed_file), "RISK_NATS_INBOX_PREFIX": "_INBOX_w1"}
    env["RISK_NATS_TLS_HOSTNAME"] = "nats.internal"
    assert connect_options(load_nats_auth(env)) == {
        "nkeys_seed": str(seed_file),
        "tls_hostname": "nats.internal",
        "inbox_prefix": "_INBOX_w1",
    }
    creds = write_creds(tmp_path / "w.creds", new_keypair(nkeys.PREFIX_BYTE_ACCOUNT))
    opts = connect_options(load_nats_auth({"RISK_NATS_CREDS_FILE": str(creds)}))
    assert opts == {"user_credentials": str(creds)}


@pytest.mark.parametrize("prefix", ["_INBOX.>", "a b", "a..b", ".a", "x.*"])
def test_load_when_inbox_prefix_has_wildcards_or_gaps_then_error(prefix: str) -> None:
    _raises({"RISK_NATS_INBOX_PREFIX": prefix}, "RISK_NATS_INBOX_PREFIX")


def test_repr_when_secrets_set_then_hidden() -> None:
    auth = NatsAuth(user="worker", password=SECRET, token=SECRET + "t")
    for text in (repr(auth), str(auth), f"{auth!r}", pretty_repr(auth), repr([auth])):
        assert SECRET not in text and "***" in text and "worker" in text


def test_options_when_tls_files_then_verifying_context(tls: TlsFiles) -> None:
    env = {"RISK_NATS_TLS_CA": str(tls.ca), "RISK_NATS_TLS_CERT": str(tls.client_cert)}
    context = connect_options(load_nats_auth(env | {"RISK_NATS_TLS_KEY": str(tls.client_key)}))
    assert isinstance(context["tls"], ssl.SSLContext)
    assert context["tls"].verify_mode == ssl.CERT_REQUIRED and context["tls"].check_hostname


def test_options_when_tls_files_do_not_load_then_error_names_variable(
    tmp_path: Path, tls: TlsFiles
) -> None:
    bad_ca = tmp_path / "bad-ca.pem"
    bad_ca.write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    pair = {"RISK_NATS_TLS_CERT": str(tls.client_cert), "RISK_NATS_TLS_KEY": str(tls.server_key)}
    encrypted = tmp_path / "enc.key"
    args = ["pkey", "-in", str(tls.client_key), "-aes128", "-passout", "pass:pw", "-out"]
    subprocess.run(["openssl", *args, str(encrypted)], check=True, capture_output=True)
    cases = [
        ({"RISK_NATS_TLS_CA": str(bad_ca)}, "RISK_NATS_TLS_CA"),
        (pair, "RISK_NATS_TLS_KEY"),  # the server's key with the client's certificate
        (pair | {"RISK_NATS_TLS_KEY": str(encrypted)}, "RISK_NATS_TLS_CERT"),  # no tty prompt
    ]
    for env, variable in cases:
        with pytest.raises(ConfigError) as caught:
            connect_options(load_nats_auth(env))
        assert caught.value.variable == variable


def test_describe_when_authorization_refused_then_names_variables_and_hides_secret() -> None:
    auth = NatsAuth(user="worker", password=SECRET)
    violation = nats.errors.Error(f"nats: 'Authorization Violation' {SECRET}")
    wrapped = ServerUnavailableError("cannot connect")
    wrapped.__cause__ = violation
    for exc in (violation, wrapped, nats.errors.AuthorizationError()):
        text = describe_connect_error(exc, auth)
        assert text.startswith("NATS authorization failed") and SECRET not in text
        assert "RISK_NATS_USER and RISK_NATS_PASSWORD" in text


def test_describe_when_tls_or_network_errors_then_clear_sentences() -> None:
    unverified = ssl.SSLCertVerificationError(1, "certificate verify failed")
    unverified.verify_message = "unable to get local issuer certificate"
    refused_cert = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    expected = {
        unverified: "RISK_NATS_TLS_CA",
        refused_cert: "refused the client certificate",
        ConnectionRefusedError(111, "Connection refused"): "cannot reach the NATS server",
        TimeoutError(): "did not answer within the connect timeout",
        nats.errors.NoServersError(): "no servers available",
    }
    for exc, words in expected.items():
        assert words in describe_connect_error(exc)
