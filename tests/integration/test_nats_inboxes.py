"""Inboxes in docker/nats-server.conf: replies go only to the users' own inbox prefixes.

Each user connects with its own inbox prefix (``worker`` ``_INBOX_worker``, ``operator``
``_INBOX_operator``, ``client`` ``_INBOX_client``) and may subscribe only under it; the worker
may publish replies only into the client's and the operator's (no ``allow_responses``, which let
a reply go to whatever subject the requester named: a ``$KV`` key, a ``$JS.API`` purge).
Runs the deployed file on a real nats-server (fixtures in tests/secured_nats.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
import pytest
from nats.aio.msg import Msg

from risk_worker.adapters.kv_bucket import read_state
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.trading_state import GLOBAL_KEY
from risk_worker.service.worker import Worker
from tests.helpers import wait_for
from tests.secured_nats import (
    BUCKET,
    INBOXES,
    PASSWORDS,
    Peer,
    compose_settings,
    global_halted_by_operator,
    peers,
    secured_server,
    violations_in_log,
)

__all__ = ["peers", "secured_server"]  # fixtures, imported for pytest

CLI = str(Path(sys.executable).parent / "risk-worker")
ENC = msgspec.json.Encoder()


async def respond_as_a_worker_without_the_reply_check(worker: Peer, client: Peer) -> None:
    """The worker user answers every check with ``msg.respond``; returns once it answers."""

    async def respond(msg: Msg) -> None:
        await msg.respond(b'{"approved": false}')

    await worker.nc.subscribe("risk.check.order", queue="risk-workers", cb=respond)

    async def answered() -> bool:  # until the server has the SUB
        try:
            await client.nc.request("risk.check.order", b"{}", timeout=1.0)
        except nats.errors.NoRespondersError:
            return False
        return True

    await wait_for(answered, 3.0, interval=0.05, message="the responder never got a request")


@pytest.mark.parametrize(
    "reply",
    [
        f"$KV.{BUCKET}.{GLOBAL_KEY}",
        f"$JS.API.STREAM.PURGE.KV_{BUCKET}",
        f"$JS.API.STREAM.DELETE.KV_{BUCKET}",
    ],
)
async def test_worker_reply_to_a_kv_key_or_the_js_api_is_refused_by_the_server(
    peers: dict[str, Peer], reply: str
) -> None:
    """Even a worker that answered any reply subject could not write the bucket."""
    operator, worker, client = peers["operator"], peers["worker"], peers["client"]
    op_kv, value, revision = await global_halted_by_operator(operator)
    await respond_as_a_worker_without_the_reply_check(worker, client)

    await client.nc.publish("risk.check.order", b"{}", reply=reply)
    await client.nc.flush()

    await worker.violation_about(reply)
    assert await read_state(op_kv, GLOBAL_KEY) == (value, revision)
    info = await operator.nc.jetstream().stream_info(f"KV_{BUCKET}")
    assert info.state.messages == 1


async def test_no_user_can_read_another_users_replies(peers: dict[str, Peer]) -> None:
    operator, worker, client = peers["operator"], peers["worker"], peers["client"]
    spies = []
    for peer in (client, worker, operator):
        for user, prefix in {**INBOXES, "default": "_INBOX"}.items():
            if user != peer.user:
                spies.append((peer, await peer.nc.subscribe(f"{prefix}.>")))
    await respond_as_a_worker_without_the_reply_check(worker, client)

    from_operator = await operator.nc.request("risk.check.order", b"{}", timeout=2.0)
    from_client = await client.nc.request("risk.check.order", b"{}", timeout=2.0)
    assert from_operator.subject.startswith(INBOXES["operator"] + ".")
    assert from_client.subject.startswith(INBOXES["client"] + ".")

    for peer, sub in spies:
        await peer.violation_about(sub.subject)
        await peer.nc.flush()  # a copy of either reply would be read by now
        assert sub.pending_msgs == 0, (peer.user, sub.subject)
    assert not [v for v in worker.violations() if "publish" in v.lower()]


async def cli(server: NatsServer, *args: str) -> tuple[int, str]:
    """The CLI as compose.yaml's ``cli`` service runs it (user ``operator``, its inbox)."""
    settings = compose_settings("cli", server.url)
    env = {
        **os.environ,
        "COLUMNS": "200",
        "RISK_NATS_URL": server.url,
        "RISK_NATS_USER": "operator",
        "RISK_NATS_PASSWORD": PASSWORDS["operator"],
        "RISK_NATS_INBOX_PREFIX": settings.nats_auth.inbox_prefix or "",
        "RISK_KV_BUCKET": BUCKET,
        "RISK_MONITOR_INTERVAL": "0.1",
        "RISK_METRICS_MAX_INTERVAL": "0.5",  # status listens 0.5 + 1.5 × 0.1 s (at least 1 s)
    }
    proc = await asyncio.create_subprocess_exec(
        CLI,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


async def test_client_check_and_operator_cli_work_with_their_own_inboxes(
    secured_server: NatsServer, peers: dict[str, Peer]
) -> None:
    """The worker as compose.yaml runs it answers the client and the operator CLI."""
    client = peers["client"]
    assert compose_settings("cli", secured_server.url).nats_auth.inbox_prefix == "_INBOX_operator"
    url = secured_server.url.replace("nats://", f"nats://worker:{PASSWORDS['worker']}@")
    worker = Worker(compose_settings("risk-worker", url, kv_bucket=BUCKET), None, None)
    assert worker.settings.reply_prefixes == ("_INBOX_client.", "_INBOX_operator.")
    await worker.start()
    try:
        assert worker.watcher is not None
        await wait_for(worker.watcher.confirmed, 5.0, message="trading state never confirmed")
        account = "acct-" + uuid.uuid4().hex[:8]
        body: dict[str, Any] = {"account_id": account, "symbol": "BTCUSDT", "side": "BUY"}
        body |= {"order_id": "o-1", "quantity": 0.1, "price": 50_000.0}

        reply = await client.nc.request("risk.check.order", ENC.encode(body), timeout=2.0)
        assert reply.subject.startswith("_INBOX_client.")
        assert json.loads(reply.data)["rejection_reason"] == "unknown_account"

        base = ("--account", account, "--symbol", "BTCUSDT", "--side", "buy", "--quantity", "1")
        code, out = await cli(secured_server, "check", *base, "--price", "50000")
        assert (code, "unknown_account" in out) == (1, True), out  # 1: answered, denied
        code, out = await cli(secured_server, "services")
        assert code == 0 and worker.settings.worker_id in out, out
        code, out = await cli(secured_server, "status")
        assert code == 0 and "1 risk-worker instance(s)" in out, out
        code, out = await cli(secured_server, "emergency", "trip", "--reason", "x", "--by", "al")
        assert code == 0 and "HALTED" in out, out
        code, out = await cli(secured_server, "emergency", "status")
        assert code == 0 and "HALTED" in out, out
        code, out = await cli(secured_server, "emergency", "clear", "--reason", "y", "--by", "al")
        assert code == 0 and "ACTIVE" in out, out
    finally:
        await worker.stop()

    for user in ("worker", "operator", "client"):
        assert violations_in_log(secured_server, user) == [], user
