"""The NATS users of docker/nats-server.conf, enforced by a real nats-server.

The server runs a temporary copy of docker/nats-server.conf in which only the client port, the
monitoring port and the JetStream store are rewritten (the ``authorization`` block is the
deployed one), with the users' passwords exported by docker/nats-entrypoint.sh from secret
files, as in the compose stack.

A publish the server refuses is not an exception in nats-py: the server answers ``-ERR
Permissions Violation`` (the error callback sees it) and drops the message, so a JetStream
publish or API request times out. Each test therefore asserts the outcome (the value read back
by the operator, a message never received) and the violation reported to the client.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats.errors
import nats.js.errors
import pytest
import yaml
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.kv import KeyValue

from risk_worker.adapters import operator as ops
from risk_worker.adapters.kv_bucket import open_bucket, read_state, write_state
from risk_worker.devstack.nats_server import NatsServer, free_port
from risk_worker.domain.policies import Policy, default_policies
from risk_worker.domain.trading_state import GLOBAL_KEY, StateValue, account_key, auto_key
from risk_worker.domain.types import Metric, Operator, PolicyType, StateSource, TradingState
from risk_worker.service.policy_source import StaticPolicySource
from risk_worker.service.settings import Settings, load_settings
from risk_worker.service.worker import Worker
from tests.harness import now_ms, settings_for
from tests.helpers import connect, wait_for

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.mark.parametrize("write", ["put", "update", "delete", "purge"])
async def test_worker_cannot_clear_the_global_stop(peers: dict[str, Peer], write: str) -> None:
    operator, worker = peers["operator"], peers["worker"]
    op_kv, value, revision = await global_halted_by_operator(operator)
    kv = await worker.kv()

    clear = ENC.encode(active("worker"))
    with pytest.raises(nats.errors.TimeoutError):
        if write == "put":
            await kv.put(GLOBAL_KEY, clear)
        elif write == "update":
            await kv.update(GLOBAL_KEY, clear, last=revision)
        elif write == "delete":
            await kv.delete(GLOBAL_KEY)
        else:
            await kv.purge(GLOBAL_KEY)

    await worker.violation_about(f"$KV.{BUCKET}.{GLOBAL_KEY}")
    assert await read_state(op_kv, GLOBAL_KEY) == (value, revision)


async def test_worker_cannot_alter_purge_or_delete_the_bucket(peers: dict[str, Peer]) -> None:
    operator, worker = peers["operator"], peers["worker"]
    op_kv, value, revision = await global_halted_by_operator(operator)
    js = worker.nc.jetstream(timeout=JS_TIMEOUT)
    stream = f"KV_{BUCKET}"

    # Creating the existing bucket again with a short max age is refused by the server ...
    with pytest.raises(nats.js.errors.APIError):
        await js.add_stream(name=stream, subjects=[f"$KV.{BUCKET}.>"], max_age=1.0)
    # ... and updating, purging or deleting it (or the message) is refused by the permissions.
    attempts: dict[str, Callable[[], Awaitable[object]]] = {
        "STREAM.UPDATE": lambda: js.update_stream(
            api.StreamConfig(name=stream, subjects=[f"$KV.{BUCKET}.>"], max_age=1.0)
        ),
        "STREAM.PURGE": lambda: js.purge_stream(stream),
        "STREAM.MSG.DELETE": lambda: js.delete_msg(stream, revision),
        "STREAM.DELETE": lambda: js.delete_stream(stream),
    }
    for api_name, attempt in attempts.items():
        with pytest.raises(TimeoutError):  # nats' TimeoutError is one too
            await asyncio.wait_for(attempt(), 2 * JS_TIMEOUT)  # delete_msg has no timeout
        await worker.violation_about(f"$JS.API.{api_name}.{stream}")

    assert await read_state(op_kv, GLOBAL_KEY) == (value, revision)
    info = await operator.nc.jetstream().stream_info(stream)
    assert not info.config.max_age


@pytest.mark.parametrize("write", ["put", "update", "delete", "purge"])
async def test_worker_cannot_undo_an_operators_account_halt(
    peers: dict[str, Peer], write: str
) -> None:
    """Issue 10, item 3: the worker credential could publish ACTIVE to an operator's account
    key; only the automatic keys are the workers' now."""
    operator, worker = peers["operator"], peers["worker"]
    op_kv = await open_bucket(operator.nc.jetstream(timeout=5.0), BUCKET)
    key = account_key("acct-" + uuid.uuid4().hex[:8])
    value = halted("operator-" + uuid.uuid4().hex[:6])
    revision = await write_state(op_kv, key, value)
    kv = await worker.kv()

    clear = ENC.encode(active("worker"))
    with pytest.raises(nats.errors.TimeoutError):
        if write == "put":
            await kv.put(key, clear)
        elif write == "update":
            await kv.update(key, clear, last=revision)
        elif write == "delete":
            await kv.delete(key)
        else:
            await kv.purge(key)

    await worker.violation_about(f"$KV.{BUCKET}.{key}")
    assert await read_state(op_kv, key) == (value, revision)


async def test_operator_clear_of_an_account_clears_its_stop_and_its_automatic_trip(
    peers: dict[str, Peer],
) -> None:
    operator, worker = peers["operator"], peers["worker"]
    account = "acct-" + uuid.uuid4().hex[:8]
    op_kv = await open_bucket(operator.nc.jetstream(timeout=5.0), BUCKET)
    await ops.trip(operator.nc, BUCKET, TradingState.HALTED, "desk", "alice", account)
    auto = StateValue(TradingState.REDUCING, "breaker", "w1", now_ms(), StateSource.POLICY)
    await write_state(await worker.kv(), auto_key(account), auto)

    rows = {k: v for k, v, _ in await ops.states(operator.nc, BUCKET, account)}
    assert rows[auto_key(account)] == auto
    assert rows[account_key(account)] is not None
    assert rows[account_key(account)].updated_by == "alice"  # type: ignore[union-attr]

    done = await ops.clear(operator.nc, BUCKET, "resolved", "bob", account)
    assert set(done) == {account_key(account), auto_key(account)}
    for key, revision in done.items():
        value, current = await read_state(op_kv, key)
        assert value is not None and value.state is TradingState.ACTIVE and current == revision
    assert worker.violations() == []
    assert operator.violations() == []


async def test_worker_can_read_the_states_trip_an_account_and_hold_the_lease(
    peers: dict[str, Peer],
) -> None:
    operator, worker = peers["operator"], peers["worker"]
    op_kv, value, _ = await global_halted_by_operator(operator)
    kv = await worker.kv()
    account = auto_key("acct-" + uuid.uuid4().hex[:8])

    assert (await read_state(kv, GLOBAL_KEY))[0] == value
    trip = StateValue(TradingState.HALTED, "drawdown", "worker", now_ms(), StateSource.POLICY)
    revision = await write_state(kv, account, trip)
    assert await read_state(op_kv, account) == (trip, revision)
    lease = await kv.create("lease.monitor", b'{"holder": "w1", "expires_ms": 0}')
    assert await kv.update("lease.monitor", b'{"holder": "w1", "expires_ms": 1}', last=lease)
    assert worker.violations() == []


async def test_operator_cli_can_trip_and_clear_the_global_stop(peers: dict[str, Peer]) -> None:
    operator, worker = peers["operator"], peers["worker"]
    announced: list[Msg] = []

    async def keep(msg: Msg) -> None:
        announced.append(msg)

    await operator.nc.subscribe("risk.alerts.emergency", cb=keep)
    tripped = await ops.trip(operator.nc, BUCKET, TradingState.HALTED, "incident", "alice", None)
    kv = await worker.kv()
    value, revision = await read_state(kv, GLOBAL_KEY)
    assert value is not None and value.state is TradingState.HALTED and revision == tripped

    cleared = await ops.clear(operator.nc, BUCKET, "resolved", "alice", None, tripped)

    value, revision = await read_state(kv, GLOBAL_KEY)
    assert value is not None and value.state is TradingState.ACTIVE
    assert cleared == {GLOBAL_KEY: revision}
    await wait_for(lambda: len(announced) == 2, 3.0, message=f"announcements: {announced}")
    assert operator.violations() == []


# -- the client (an OMS) ------------------------------------------------------------------------


async def test_client_cannot_publish_alerts_or_write_the_bucket(peers: dict[str, Peer]) -> None:
    operator, worker, client = peers["operator"], peers["worker"], peers["client"]
    op_kv, value, revision = await global_halted_by_operator(operator)
    seen: list[Msg] = []

    async def keep(msg: Msg) -> None:
        seen.append(msg)

    await operator.nc.subscribe("risk.alerts.>", cb=keep)
    await until_delivered(worker.nc, "risk.alerts.warning", seen, b'{"from": "worker", "n": 1}')

    await client.nc.publish("risk.alerts.critical", b'{"from": "client"}')
    await client.nc.publish(f"$KV.{BUCKET}.{GLOBAL_KEY}", ENC.encode(active("client")))
    await client.nc.flush()
    await client.violation_about("risk.alerts.critical")
    await client.violation_about(f"$KV.{BUCKET}.{GLOBAL_KEY}")
    # Sent after the client's were refused: once it is in, the client's would have been too.
    await until_delivered(worker.nc, "risk.alerts.warning", seen, b'{"from": "worker", "n": 2}')

    assert {m.subject for m in seen} == {"risk.alerts.warning"}
    assert not any(b"client" in m.data for m in seen)
    assert await read_state(op_kv, GLOBAL_KEY) == (value, revision)


async def test_client_gets_a_check_reply_only_through_its_own_inbox(
    secured_server: NatsServer, peers: dict[str, Peer]
) -> None:
    worker, client = peers["worker"], peers["client"]

    async def respond(msg: Msg) -> None:
        await msg.respond(b'{"approved": false, "echo": ' + msg.data + b"}")

    await worker.nc.subscribe("risk.check.order", queue="risk-workers", cb=respond)
    await worker.nc.flush()
    replies: list[Msg] = []

    async def answered() -> bool:  # until the server has the SUB (see until_delivered)
        try:
            replies.append(
                await client.nc.request("risk.check.order", b'{"order_id": "o-1"}', timeout=2.0)
            )
        except nats.errors.NoRespondersError:
            return False
        return True

    await wait_for(answered, 3.0, interval=0.05, message="the responder never got the request")
    reply = replies[0]
    assert reply.subject.startswith(CLIENT_INBOX + ".")
    assert json.loads(reply.data) == {"approved": False, "echo": {"order_id": "o-1"}}
    assert client.violations() == []

    # With the default _INBOX prefix the client could read everybody's replies: refused.
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    plain = await connect(
        secured_server.url, user="client", password=PASSWORDS["client"], error_cb=on_error
    )
    try:
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await plain.request("risk.check.order", b'{"order_id": "o-2"}', timeout=1.0)
        await wait_for(
            lambda: any(
                "subscription" in str(e).lower() and "_inbox." in str(e).lower() for e in errors
            ),
            3.0,
            message=f"no subscription violation for _INBOX: {errors}",
        )
    finally:
        await plain.close()


# -- the real worker under its user -------------------------------------------------------------


def violations_in_log(server: NatsServer, user: str) -> list[str]:
    log = (server.data_dir / "nats-server.log").read_text(errors="replace")
    return [line for line in log.splitlines() if "Violation" in line and f"/user:{user}" in line]


async def test_worker_runs_end_to_end_with_only_its_permissions(
    secured_server: NatsServer, peers: dict[str, Peer], migrated_url: str
) -> None:
    """Everything the worker does at start and while serving stays inside its permissions:
    creating the stream and the bucket, watching, the services protocol, checks, metrics,
    the monitor lease, publishing audit records and consuming them into PostgreSQL."""
    operator, client = peers["operator"], peers["client"]
    url = secured_server.url.replace("nats://", f"nats://worker:{PASSWORDS['worker']}@")
    cap = Policy(
        "qty-cap", "Order Quantity Cap", PolicyType.HARD, Metric.ORDER_QUANTITY, Operator.LTE, 1.0
    )
    worker = Worker(
        compose_settings("risk-worker", url, kv_bucket=BUCKET, database_url=migrated_url),
        StaticPolicySource([*default_policies(), cap]),
        None,
    )
    metrics: list[Msg] = []

    async def keep(msg: Msg) -> None:
        metrics.append(msg)

    await operator.nc.subscribe("risk.metrics", cb=keep)
    await worker.start()
    try:
        assert worker.watcher is not None
        await wait_for(worker.watcher.confirmed, 5.0, message="trading state never confirmed")
        account = "acct-" + uuid.uuid4().hex[:8]
        await client.nc.publish(
            "pnl.update", ENC.encode({"account_id": account, "balance": 1e6, "timestamp": now_ms()})
        )
        await client.nc.publish("market.tick.BTCUSDT", ENC.encode({"price": 60_000.0}))

        async def check(quantity: float) -> dict[str, Any]:
            body = {
                "order_id": uuid.uuid4().hex,
                "account_id": account,
                "symbol": "BTCUSDT",
                "side": "BUY",
                "quantity": quantity,
                "price": 60_000.0,
            }
            reply = await client.nc.request("risk.check.order", ENC.encode(body), timeout=2.0)
            decoded: dict[str, Any] = json.loads(reply.data)
            return decoded

        async def approved() -> bool:
            return bool((await check(0.5))["approved"])

        await wait_for(approved, 5.0, interval=0.1, message="no check was approved")
        assert (await check(2.0))["rejection_reason"] == "order_too_large"

        op_kv = await open_bucket(operator.nc.jetstream(), BUCKET)
        await write_state(op_kv, GLOBAL_KEY, halted("operator"))

        async def stopped() -> bool:
            return bool((await check(0.5))["rejection_reason"] == "emergency_stop_active")

        await wait_for(stopped, 5.0, interval=0.1, message="the global stop never applied")

        conn = await asyncpg.connect(migrated_url)
        try:

            async def audited() -> bool:
                violations = await conn.fetchval(
                    "SELECT count(*) FROM risk_violations WHERE account_id = $1", account
                )
                stops = await conn.fetchval(
                    "SELECT count(*) FROM emergency_stops WHERE scope = 'global'"
                )
                return bool(violations >= 1 and stops >= 1)

            await wait_for(audited, 10.0, interval=0.1, message="audit rows never arrived")
        finally:
            await conn.close()
        await wait_for(lambda: bool(metrics), 5.0, message="no risk.metrics from the worker")
        instances = await ops.discover(operator.nc, "risk-worker")  # $SRV.INFO and $SRV.STATS
        assert [i["stats"]["endpoints"][0]["num_requests"] > 0 for i in instances] == [True]
        assert worker.publisher is not None and worker.publisher.failures == 0
    finally:
        await worker.stop()

    assert violations_in_log(secured_server, "worker") == []
    assert violations_in_log(secured_server, "client") == []
