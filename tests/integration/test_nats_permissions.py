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
import uuid
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
import pytest
from nats.aio.msg import Msg
from nats.js import api

from risk_worker.adapters import operator as ops
from risk_worker.adapters.input_stream import STREAM as INPUTS
from risk_worker.adapters.input_stream import ensure_inputs_stream
from risk_worker.adapters.kv_bucket import open_bucket, read_state, write_state
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.trading_state import (
    GLOBAL_KEY,
    StateValue,
    account_key,
    auto_key,
    auto_strategy_key,
)
from risk_worker.domain.types import StateSource, TradingState
from tests.harness import now_ms
from tests.helpers import connect, wait_for
from tests.secured_nats import (
    BUCKET,
    CLIENT_INBOX,
    ENC,
    JS_TIMEOUT,
    PASSWORDS,
    Peer,
    active,
    global_halted_by_operator,
    halted,
    peers,
    secured_server,
    until_delivered,
)

__all__ = ["peers", "secured_server"]  # fixtures, imported for pytest


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


async def test_worker_trips_a_strategy_of_an_account_and_the_operator_clears_it(
    peers: dict[str, Peer],
) -> None:
    """Issue 13 §2: ``trading_state.auto.>`` covers the automatic trip of a strategy of an
    account; the operator credential reads and clears it (compare-and-set)."""
    operator, worker = peers["operator"], peers["worker"]
    account = "acct-" + uuid.uuid4().hex[:8]
    key = auto_strategy_key(account, "momo-1")
    op_kv = await open_bucket(operator.nc.jetstream(timeout=5.0), BUCKET)
    trip = StateValue(TradingState.HALTED, "strategy loss", "w1", now_ms(), StateSource.POLICY)
    revision = await write_state(await worker.kv(), key, trip)

    rows = {k: (v, r) for k, v, r in await ops.states(operator.nc, BUCKET, account)}
    assert rows[key] == (trip, revision)
    done = await ops.clear(
        operator.nc, BUCKET, "resolved", "bob", account, None, revision, "momo-1"
    )
    assert list(done) == [key]
    value, current = await read_state(op_kv, key)
    assert value is not None and value.state is TradingState.ACTIVE and current == done[key]
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


async def test_worker_keeps_and_reads_risk_inputs_but_cannot_purge_or_delete_it(
    peers: dict[str, Peer],
) -> None:
    """Issue 14: the worker creates RISK_INPUTS and reads it through an ordered consumer; a
    client's plain core publish is captured (nothing new for producers); purging, deleting a
    message or the stream stays refused (a restart would lose the events)."""
    client, worker = peers["client"], peers["worker"]
    js = worker.nc.jetstream(timeout=JS_TIMEOUT)
    await ensure_inputs_stream(js, 3_600.0, 1)
    await ensure_inputs_stream(js, 7_200.0, 1)  # an existing stream's max age is updated
    body = b'{"account_id": "perm-1", "balance": 1000.0}'
    await client.nc.publish("pnl.update", body)
    await client.nc.flush()
    got: list[bytes] = []

    async def keep(msg: Msg) -> None:
        got.append(msg.data)

    sub = await js.subscribe(
        "pnl.update", stream=INPUTS, cb=keep, ordered_consumer=True, idle_heartbeat=1.0
    )
    await wait_for(lambda: body in got, 5.0, message="the client's pnl.update was not captured")
    await sub.unsubscribe()
    attempts: dict[str, Callable[[], Awaitable[object]]] = {
        "STREAM.PURGE": lambda: js.purge_stream(INPUTS),
        "STREAM.MSG.DELETE": lambda: js.delete_msg(INPUTS, 1),
        "STREAM.DELETE": lambda: js.delete_stream(INPUTS),
    }
    for api_name, attempt in attempts.items():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(attempt(), 2 * JS_TIMEOUT)
        await worker.violation_about(f"$JS.API.{api_name}.{INPUTS}")
    info = await js.stream_info(INPUTS)
    assert info.state.messages >= 1 and info.config.max_age == 7_200.0
