"""Each NATS authentication method against a real nats-server: accepted, and refused clearly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nkeys
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from risk_worker.adapters.nats_auth import (
    NatsAuthError,
    connect_options,
    describe_connect_error,
    load_nats_auth,
    open_connection,
)
from risk_worker.devstack.nats_server import NatsServer
from tests.procs import RISK_WORKER, risk_env, unique
from tests.tls_fixtures import (
    TlsFiles,
    make_operator_files,
    make_tls_files,
    new_keypair,
    write_creds,
)

PASSWORD, TOKEN = "correct-horse-battery", "t0ken-abc-123"
ONCE: dict[str, Any] = {"allow_reconnect": False, "max_reconnect_attempts": 0, "connect_timeout": 2}


@contextlib.contextmanager
def _server(directory: Path, config: str) -> Iterator[NatsServer]:
    """A nats-server started with ``config`` as its configuration file."""
    (directory / "server.conf").write_text(config)
    with NatsServer(directory / "data", config_file=directory / "server.conf") as server:
        yield server


@pytest.fixture(scope="module")
def userpass_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    config = f'authorization {{ user: "worker", password: "{PASSWORD}" }}\n'
    with _server(tmp_path_factory.mktemp("userpass"), config) as server:
        yield server


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    config = f'authorization {{ token: "{TOKEN}" }}\n'
    with _server(tmp_path_factory.mktemp("token"), config) as server:
        yield server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[TlsFiles, TlsFiles]:
    """The server's PKI and an unrelated one."""
    directory = tmp_path_factory.mktemp("pki")
    return make_tls_files(directory / "good"), make_tls_files(directory / "other", "intruder")


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, pki: tuple[TlsFiles, TlsFiles]
) -> Iterator[NatsServer]:
    good = pki[0]
    config = f'tls {{ cert_file: "{good.server_cert}", key_file: "{good.server_key}"\n'
    config += f'  ca_file: "{good.ca}", verify: true }}\n'
    with _server(tmp_path_factory.mktemp("mtls"), config) as server:
        yield server


async def _round_trip(url: str, env: dict[str, str]) -> None:
    """Connects with ``nats.connect`` and the options from ``env``, then publishes and flushes."""
    nc = await nats.connect(url, **ONCE, **connect_options(load_nats_auth(env)))
    try:
        await nc.publish("auth.check", b"x")
        await nc.flush(timeout=2)
    finally:
        await nc.close()


async def _refused(url: str, env: dict[str, str]) -> str:
    """Connects with open_connection (endless retries) and returns the refusal's message."""
    started = time.monotonic()
    options: dict[str, Any] = {"max_reconnect_attempts": -1, "reconnect_time_wait": 0.1}
    with pytest.raises(NatsAuthError) as caught:
        await asyncio.wait_for(open_connection(url, load_nats_auth(env), **options), 10)
    assert time.monotonic() - started < 5, "a refusal must end the attempt, not a deadline"
    message = str(caught.value)
    assert message == describe_connect_error(caught.value)
    assert PASSWORD not in message and TOKEN not in message
    return message


async def test_user_password_when_right_then_connects(userpass_server: NatsServer) -> None:
    env = {"RISK_NATS_USER": "worker", "RISK_NATS_PASSWORD": PASSWORD}
    await _round_trip(userpass_server.url, env)


async def test_password_file_when_right_then_connects(
    userpass_server: NatsServer, tmp_path: Path
) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    env = {"RISK_NATS_USER": "worker", "RISK_NATS_PASSWORD_FILE": str(tmp_path / "pw")}
    nc = await open_connection(userpass_server.url, load_nats_auth(env), **ONCE)
    assert nc.is_connected
    await nc.close()


async def test_user_password_when_wrong_then_refused_clearly(userpass_server: NatsServer) -> None:
    env = {"RISK_NATS_USER": "worker", "RISK_NATS_PASSWORD": "wrong-" + PASSWORD}
    message = await _refused(userpass_server.url, env)
    assert "authorization" in message.lower()
    assert "RISK_NATS_USER and RISK_NATS_PASSWORD" in message
    assert "wrong-" not in message


async def test_plain_client_when_wrong_then_describe_says_authorization(
    userpass_server: NatsServer,
) -> None:
    auth = load_nats_auth({"RISK_NATS_USER": "worker", "RISK_NATS_PASSWORD": "nope-nope"})
    nc = Client()  # not nats.connect: on this error it leaves its socket open (nats-py 2.16)
    with pytest.raises(nats.errors.Error) as caught:
        try:
            await nc.connect(userpass_server.url, **ONCE, **connect_options(auth))
        finally:
            await nc.close()
    assert "Authorization Violation" in str(caught.value)
    message = describe_connect_error(caught.value, auth)
    assert message.startswith("NATS authorization failed") and "nope-nope" not in message


async def test_no_credentials_when_server_needs_them_then_refused(
    userpass_server: NatsServer,
) -> None:
    assert "none is set" in await _refused(userpass_server.url, {})


async def test_token_when_right_then_connects_and_wrong_refused(token_server: NatsServer) -> None:
    await _round_trip(token_server.url, {"RISK_NATS_TOKEN": TOKEN})
    message = await _refused(token_server.url, {"RISK_NATS_TOKEN": TOKEN + "x"})
    assert "authorization" in message.lower() and "RISK_NATS_TOKEN" in message


async def test_nkey_seed_when_right_then_connects_and_other_key_refused(tmp_path: Path) -> None:
    user, other = (new_keypair(nkeys.PREFIX_BYTE_USER) for _ in range(2))
    (tmp_path / "user.nk").write_bytes(user.seed + b"\n")
    (tmp_path / "other.nk").write_bytes(other.seed)
    config = f"authorization {{ users = [ {{ nkey: {user.public_key.decode()} }} ] }}\n"
    with _server(tmp_path, config) as server:
        await _round_trip(server.url, {"RISK_NATS_NKEY_SEED_FILE": str(tmp_path / "user.nk")})
        env = {"RISK_NATS_NKEY_SEED_FILE": str(tmp_path / "other.nk")}
        message = await _refused(server.url, env)
        assert "RISK_NATS_NKEY_SEED_FILE" in message
        assert other.seed.decode() not in message


async def test_creds_file_when_right_then_connects_and_unknown_account_refused(
    tmp_path: Path,
) -> None:
    files = make_operator_files(tmp_path / "op")
    stranger = write_creds(tmp_path / "stranger.creds", new_keypair(nkeys.PREFIX_BYTE_ACCOUNT))
    with _server(tmp_path, files.server_conf.read_text()) as server:
        await _round_trip(server.url, {"RISK_NATS_CREDS_FILE": str(files.creds)})
        message = await _refused(server.url, {"RISK_NATS_CREDS_FILE": str(stranger)})
        assert "authorization" in message.lower() and "RISK_NATS_CREDS_FILE" in message


def _tls_env(ca: TlsFiles, client: TlsFiles) -> dict[str, str]:
    env = {"RISK_NATS_TLS_CA": str(ca.ca), "RISK_NATS_TLS_CERT": str(client.client_cert)}
    return env | {"RISK_NATS_TLS_KEY": str(client.client_key)}


@pytest.mark.parametrize("scheme_host", ["tls://127.0.0.1", "nats://localhost"])
async def test_mutual_tls_when_right_then_connects(
    tls_server: NatsServer, pki: tuple[TlsFiles, TlsFiles], scheme_host: str
) -> None:
    await _round_trip(f"{scheme_host}:{tls_server.port}", _tls_env(pki[0], pki[0]))


async def test_mutual_tls_when_client_cert_from_other_ca_then_refused(
    tls_server: NatsServer, pki: tuple[TlsFiles, TlsFiles]
) -> None:
    message = await _refused(f"tls://127.0.0.1:{tls_server.port}", _tls_env(pki[0], pki[1]))
    assert "client certificate" in message and "RISK_NATS_TLS_CERT" in message


async def test_mutual_tls_when_no_client_cert_then_refused(
    tls_server: NatsServer, pki: tuple[TlsFiles, TlsFiles]
) -> None:
    env = {"RISK_NATS_TLS_CA": str(pki[0].ca)}
    assert "client certificate" in await _refused(f"tls://127.0.0.1:{tls_server.port}", env)


async def test_tls_when_server_cert_not_trusted_or_wrong_name_then_refused(
    tls_server: NatsServer, pki: tuple[TlsFiles, TlsFiles]
) -> None:
    url = f"tls://127.0.0.1:{tls_server.port}"
    untrusted = await _refused(url, _tls_env(pki[1], pki[0]))
    assert "certificate was not accepted" in untrusted and "RISK_NATS_TLS_CA" in untrusted
    env = _tls_env(pki[0], pki[0]) | {"RISK_NATS_TLS_HOSTNAME": "nats.example.org"}
    assert "RISK_NATS_TLS_HOSTNAME" in await _refused(url, env)


async def test_inbox_prefix_when_set_then_replies_use_it(own_nats_server: NatsServer) -> None:
    auth = load_nats_auth({"RISK_NATS_INBOX_PREFIX": "_INBOX_worker"})
    nc = await open_connection(own_nats_server.url, auth, **ONCE)

    async def echo_reply_subject(msg: Msg) -> None:
        await msg.respond(msg.reply.encode())

    try:
        await nc.subscribe("auth.echo", cb=echo_reply_subject)
        reply = await nc.request("auth.echo", b"", timeout=2)
        assert reply.data.startswith(b"_INBOX_worker.")
    finally:
        await nc.close()


async def test_worker_when_password_wrong_then_exits_1_saying_authorization(
    userpass_server: NatsServer,
) -> None:
    env = risk_env(userpass_server.url, unique("auth"), RISK_NATS_CONNECT_TIMEOUT="3")
    env |= {"RISK_NATS_USER": "worker", "RISK_NATS_PASSWORD": "not-the-password"}
    proc = await asyncio.create_subprocess_exec(
        str(RISK_WORKER), "run", env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 1, err.decode(errors="replace")
    assert "authorization" in err.decode(errors="replace").lower()
    assert "not-the-password" not in err.decode(errors="replace")
