"""A real nats-server running the deployed docker/nats-server.conf, and a connection per user.

Fixtures and helpers of the permission tests (tests/integration/test_nats_permissions*.py,
test_nats_inboxes.py). Only the client port, the monitoring port and the JetStream store of
the file are rewritten; the users' passwords are exported by docker/nats-entrypoint.sh from
secret files, as in the compose stack.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from risk_worker.adapters.kv_bucket import open_bucket, write_state
from risk_worker.devstack.nats_server import NatsServer, free_port
from risk_worker.domain.trading_state import GLOBAL_KEY, StateValue
from risk_worker.domain.types import StateSource, TradingState
from risk_worker.service.settings import Settings, load_settings
from tests.harness import now_ms, settings_for
from tests.helpers import connect, wait_for

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "docker" / "nats-server.conf"
ENTRYPOINT = ROOT / "docker" / "nats-entrypoint.sh"
BUCKET = "risk_control"
CLIENT_INBOX = "_INBOX_client"
INBOXES = {"worker": "_INBOX_worker", "operator": "_INBOX_operator", "client": CLIENT_INBOX}
"""Each user's inbox prefix, the only one it may subscribe to (the worker's and the CLI's are
RISK_NATS_INBOX_PREFIX in compose.yaml: see ``compose_settings``)."""
COMPOSE = ROOT / "compose.yaml"
PASSWORDS = {
    # Unquoted in the configuration these would be a number and a syntax error: the test also
    # proves that the entrypoint's quoting keeps them intact.
    "worker": "0123456789",
    "operator": "op pass #1 $HOME",
    "client": "client-" + uuid.uuid4().hex,
}
ENC = msgspec.json.Encoder()
JS_TIMEOUT = 1.0
"""Seconds a denied JetStream publish or API request waits before it times out."""


def deployed_config_for_tests(directory: Path, port: int) -> Path:
    """docker/nats-server.conf with only ``port``, ``http`` and ``store_dir`` changed.

    ``store_dir`` is removed rather than rewritten: NatsServer passes ``-sd`` (a temporary
    store) and nats-server refuses a second ``store_dir``.
    """
    text = CONF.read_text(encoding="utf-8")
    text, ports = re.subn(r"(?m)^port:\s*\d+\s*$", f"port: {port}", text)
    text, https = re.subn(r"(?m)^http:\s*\d+\s*$", f"http: {free_port()}", text)
    text, stores = re.subn(r"(?m)^\s*store_dir:.*$", "", text)
    assert (ports, https, stores) == (1, 1, 1), "docker/nats-server.conf changed shape"
    path = directory / "nats-server.conf"
    path.write_text(text, encoding="utf-8")
    return path


def exported_passwords(directory: Path) -> dict[str, str]:
    """What docker/nats-entrypoint.sh exports for the passwords in ``PASSWORDS``."""
    env = {"PATH": "/usr/bin:/bin"}
    for user, password in PASSWORDS.items():
        secret = directory / f"nats_{user}_password.txt"
        secret.write_text(password + "\n", encoding="utf-8")
        env[f"{user.upper()}_PASSWORD_FILE"] = str(secret)
    names = [f"{user.upper()}_PASSWORD" for user in PASSWORDS]
    show = f"import os, json; print(json.dumps({{k: os.environ[k] for k in {names!r}}}))"
    out = subprocess.run(
        ["sh", str(ENTRYPOINT), sys.executable, "-c", show],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    exported: dict[str, str] = json.loads(out)
    return exported


@pytest.fixture
def secured_server(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[NatsServer]:
    """A nats-server running the deployed users and permissions."""
    directory = tmp_path_factory.mktemp("secured-nats")
    for name, value in exported_passwords(directory).items():
        monkeypatch.setenv(name, value)  # the server process inherits them
    port = free_port()
    server = NatsServer(
        directory, port=port, config_file=deployed_config_for_tests(directory, port)
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Peer:
    """One user's connection and the errors the server reported to it."""

    user: str
    nc: Client
    errors: list[Exception] = field(default_factory=list)

    def violations(self) -> list[str]:
        return [str(e) for e in self.errors if "permissions violation" in str(e).lower()]

    async def violation_about(self, subject: str) -> None:
        """Wait until the server reported a permissions violation naming ``subject``."""
        await wait_for(
            lambda: any(subject.lower() in v.lower() for v in self.violations()),
            3.0,
            message=f"{self.user}: no permissions violation for {subject}; got {self.errors}",
        )

    async def kv(self) -> KeyValue:
        """The bucket, bound through a JetStream context with a short timeout."""
        return await self.nc.jetstream(timeout=JS_TIMEOUT).key_value(BUCKET)


@pytest.fixture
async def peers(secured_server: NatsServer) -> AsyncIterator[dict[str, Peer]]:
    """``worker``, ``operator`` and ``client``, each with its own inbox prefix, connected."""
    out: dict[str, Peer] = {}
    for user, password in PASSWORDS.items():
        errors: list[Exception] = []

        async def on_error(exc: Exception, errors: list[Exception] = errors) -> None:
            errors.append(exc)

        options: dict[str, Any] = {"user": user, "password": password, "error_cb": on_error}
        options["inbox_prefix"] = INBOXES[user]
        out[user] = Peer(user, await connect(secured_server.url, **options), errors)
    yield out
    for peer in out.values():
        await peer.nc.close()


def compose_settings(service: str, url: str, **overrides: Any) -> Settings:
    """Test settings (``settings_for``) with the inbox prefix and the accepted reply prefixes
    compose.yaml gives ``service`` (``risk-worker`` or ``cli``)."""
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    env = {k: str(v) for k, v in services[service]["environment"].items()}
    wanted = {
        k: v for k, v in env.items() if k in {"RISK_NATS_INBOX_PREFIX", "RISK_REPLY_PREFIXES"}
    }
    loaded = load_settings(wanted)
    return settings_for(
        url, nats_auth=loaded.nats_auth, reply_prefixes=loaded.reply_prefixes, **overrides
    )


async def until_delivered(sender: Client, subject: str, seen: list[Msg], data: bytes) -> None:
    """Publish ``data`` until ``seen`` has it: the receiver's subscription is then live.

    nats-py 2.16's ``flush()`` writes its PING straight to the socket, so it can overtake a SUB
    still in the write buffer: a flush alone does not prove that the server has the interest.
    """

    async def arrived() -> bool:
        await sender.publish(subject, data)
        await sender.flush()
        await asyncio.sleep(0.02)
        return any(m.data == data for m in seen)

    await wait_for(arrived, 3.0, interval=0.0, message=f"{data!r} never arrived on {subject}")


def halted(by: str) -> StateValue:
    return StateValue(TradingState.HALTED, "test trip", by, now_ms(), StateSource.OPERATOR)


def active(by: str) -> StateValue:
    return StateValue(TradingState.ACTIVE, "test clear", by, now_ms(), StateSource.OPERATOR)


async def global_halted_by_operator(operator: Peer) -> tuple[KeyValue, StateValue, int]:
    """The operator creates the bucket and trips the global stop: (bucket, value, revision)."""
    kv = await open_bucket(operator.nc.jetstream(timeout=5.0), BUCKET)
    value = halted("operator-" + uuid.uuid4().hex[:6])
    revision = await write_state(kv, GLOBAL_KEY, value)
    return kv, value, revision


# -- the worker and the global stop -------------------------------------------------------------


def violations_in_log(server: NatsServer, user: str) -> list[str]:
    log = (server.data_dir / "nats-server.log").read_text(errors="replace")
    return [line for line in log.splitlines() if "Violation" in line and f"/user:{user}" in line]
