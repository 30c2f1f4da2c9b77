"""The emergency stop end to end: worker subprocesses, tripped and cleared by the operator CLI."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from risk_worker.adapters.kv_bucket import open_bucket, read_state, write_state
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.trading_state import GLOBAL_KEY, StateValue, account_key, auto_key
from risk_worker.domain.types import StateSource, TradingState
from tests.helpers import connect, wait_for
from tests.procs import (
    CHECK_SUBJECT,
    Workers,
    check,
    fund,
    order,
    risk_env,
    run_cli,
    set_position,
    unique,
    wait_approved,
    wait_denied,
)

pytestmark = pytest.mark.timeout(60)

EMERGENCY_SUBJECT = "risk.alerts.emergency"


async def test_trip_by_cli_when_second_worker_process_running_then_denied_within_100ms(
    nats_server: NatsServer, workers: Workers
) -> None:
    worker = workers.start(nats_server.url)
    env = risk_env(nats_server.url, worker.bucket)
    nc = await connect(nats_server.url)
    try:
        await worker.wait_serving(nc)
        account = unique("ACC-")
        await fund(nc, account)
        await wait_approved(nc, account)

        reason = unique("drill-")
        alerts: list[tuple[float, dict[str, Any]]] = []

        async def on_alert(msg: Msg) -> None:
            body = msgspec.json.decode(msg.data)
            if str(body.get("reason", "")).startswith(reason):
                alerts.append((time.monotonic(), body))

        await nc.subscribe(EMERGENCY_SUBJECT, cb=on_alert)
        await nc.flush()

        replies: list[tuple[float, dict[str, Any]]] = []
        stop = asyncio.Event()

        async def checker() -> None:
            while not stop.is_set():
                reply = await check(nc, account)
                replies.append((time.monotonic(), reply))

        task = asyncio.create_task(checker())
        try:
            await wait_for(lambda: len(replies) >= 10, 5.0, message="checker got no replies")
            tripped = await run_cli(env, "emergency", "trip", "--reason", reason, "--by", "pytest")
            assert tripped.returncode == 0, tripped
            assert "global → HALTED" in tripped.stdout, tripped
            await wait_for(lambda: alerts, 5.0, message="no emergency alert after the trip")

            def denied_since() -> int | None:
                return next(
                    (
                        i
                        for i, (_, r) in enumerate(replies)
                        if r["rejection_reason"] == "emergency_stop_active"
                    ),
                    None,
                )

            await wait_for(
                lambda: denied_since() is not None, 5.0, message="never denied after the trip"
            )
            count_at_first_denial = len(replies)
            await wait_for(lambda: len(replies) >= count_at_first_denial + 20, 5.0)
        finally:
            stop.set()
            await task

        t0, alert = alerts[0]
        assert alert["type"] == "emergency_stop"
        assert (alert["scope"], alert["state"], alert["triggered_by"]) == (
            "global",
            "HALTED",
            "pytest",
        )
        first = denied_since()
        assert first is not None
        t1 = replies[first][0]
        assert any(r["approved"] for _, r in replies[:first]), "no approval before the trip"
        after = [r for _, r in replies[first:]]
        assert all(r["rejection_reason"] == "emergency_stop_active" for r in after), (
            "an order passed after the stop was seen"
        )
        assert {r["worker_id"] for _, r in replies} == {worker.worker_id}
        latency_ms = (t1 - t0) * 1000
        print(
            f"\ntrip (CLI) → first emergency_stop_active reply: {latency_ms:+.1f} ms after the "
            f"alert arrived ({first} checks before it, {len(replies)} in all)"
        )
        assert t1 - t0 < 0.100, f"denied {latency_ms:.1f} ms after the trip alert"

        cleared = await run_cli(
            env, "emergency", "clear", "--reason", f"{reason} over", "--by", "pytest"
        )
        assert cleared.returncode == 0, cleared
        assert "global → ACTIVE" in cleared.stdout, cleared
        await wait_approved(nc, account, timeout=5.0)
        await wait_for(lambda: len(alerts) >= 2, 5.0, message="no alert after the clear")
        assert (alerts[1][1]["type"], alerts[1][1]["state"]) == ("emergency_clear", "ACTIVE")
    finally:
        await nc.close()


async def test_clear_with_stale_revision_when_newer_trip_exists_then_stop_stays(
    nats_server: NatsServer, workers: Workers
) -> None:
    worker = workers.start(nats_server.url)
    env = risk_env(nats_server.url, worker.bucket)
    nc = await connect(nats_server.url)
    try:
        await worker.wait_serving(nc)
        kv = await open_bucket(nc.jetstream(), worker.bucket)
        account = unique("ACC-")
        await fund(nc, account)
        await wait_approved(nc, account)

        first = await run_cli(env, "emergency", "trip", "--reason", "first", "--by", "alice")
        assert first.returncode == 0, first
        value, r1 = await read_state(kv, GLOBAL_KEY)
        assert value is not None and value.state is TradingState.HALTED
        assert f"(revision {r1})" in first.stdout, first
        await wait_denied(nc, account, "emergency_stop_active", timeout=5.0)

        second = await run_cli(env, "emergency", "trip", "--reason", "second", "--by", "bob")
        assert second.returncode == 0, second
        value, r2 = await read_state(kv, GLOBAL_KEY)
        assert value is not None and (value.reason, value.updated_by) == ("second", "bob")
        assert r2 > r1

        status = await run_cli(env, "emergency", "status")
        assert status.returncode == 0, status
        assert "HALTED" in status.stdout and str(r2) in status.stdout, status

        stale = await run_cli(
            env, "emergency", "clear", "--reason", "late", "--by", "alice", "--revision", str(r1)
        )
        assert stale.returncode == 1, stale
        assert "not cleared" in stale.stderr, stale
        value, revision = await read_state(kv, GLOBAL_KEY)
        assert value is not None and value.state is TradingState.HALTED
        assert revision == r2
        # The stop stays: every check over a few hundred ms (time passing is the condition).
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            reply = await check(nc, account)
            assert reply["rejection_reason"] == "emergency_stop_active", reply

        cleared = await run_cli(env, "emergency", "clear", "--reason", "done", "--by", "bob")
        assert cleared.returncode == 0, cleared
        assert "global → ACTIVE" in cleared.stdout, cleared
        await wait_approved(nc, account, timeout=5.0)
    finally:
        await nc.close()


async def test_account_trip_by_cli_when_other_accounts_trade_then_only_that_account_stops(
    nats_server: NatsServer, workers: Workers
) -> None:
    worker = workers.start(nats_server.url)
    env = risk_env(nats_server.url, worker.bucket)
    nc = await connect(nats_server.url)
    try:
        await worker.wait_serving(nc)
        stopped, other = unique("ACC-"), unique("ACC-")
        await fund(nc, stopped)
        await fund(nc, other)
        await set_position(nc, stopped, "BTCUSDT", 2.0, 48_000.0)

        async def position_applied() -> bool:
            reply = await check(nc, stopped, side="BUY", quantity=0.1, detail="full")
            m = reply.get("post_trade_metrics") or {}
            return bool(reply["approved"]) and m.get("gross_exposure", 0.0) > 100_000.0

        await wait_for(position_applied, 10.0, 0.02, "position never applied")
        await wait_approved(nc, other)

        halted = await run_cli(
            env, "emergency", "trip", "--reason", "kyc", "--by", "ops", "--account", stopped
        )
        assert halted.returncode == 0, halted
        assert f"{stopped} → HALTED" in halted.stdout, halted
        await wait_denied(nc, stopped, "emergency_stop_active", timeout=5.0)
        assert (await check(nc, stopped, side="SELL", quantity=1.0))[
            "rejection_reason"
        ] == "emergency_stop_active"  # halted: even a reduction is denied
        assert (await check(nc, other))["approved"] is True

        reducing = await run_cli(
            env,
            "emergency",
            "trip",
            "--reason",
            "wind down",
            "--by",
            "ops",
            "--account",
            stopped,
            "--reducing",
        )
        assert reducing.returncode == 0, reducing
        assert f"{stopped} → REDUCING" in reducing.stdout, reducing
        await wait_denied(nc, stopped, "reducing_only", timeout=5.0, side="BUY", quantity=0.1)
        reduce = await check(nc, stopped, side="SELL", quantity=1.0)
        assert reduce["approved"] is True, reduce
        assert (await check(nc, stopped, side="SELL", quantity=3.0))[
            "rejection_reason"
        ] == "reducing_only"  # would flip to short: not strictly reducing
        assert (await check(nc, other, side="BUY", quantity=0.1))["approved"] is True

        status = await run_cli(env, "emergency", "status", "--account", stopped)
        assert status.returncode == 0, status
        assert "REDUCING" in status.stdout, status

        cleared = await run_cli(
            env, "emergency", "clear", "--reason", "ok", "--by", "ops", "--account", stopped
        )
        assert cleared.returncode == 0, cleared
        await wait_approved(nc, stopped, timeout=5.0, side="BUY", quantity=0.1)
    finally:
        await nc.close()


async def test_sigterm_when_checks_in_flight_then_answers_them_and_exits_0(
    nats_server: NatsServer, workers: Workers
) -> None:
    worker = workers.start(nats_server.url)
    nc: Client = await connect(nats_server.url)
    try:
        await worker.wait_serving(nc)
        account = unique("ACC-")
        await fund(nc, account)
        await wait_approved(nc, account)

        inbox = nc.new_inbox()
        sent: dict[str, float] = {}
        answered: dict[str, dict[str, Any]] = {}

        async def on_reply(msg: Msg) -> None:
            answered[msg.subject] = msgspec.json.decode(msg.data)

        await nc.subscribe(f"{inbox}.*", cb=on_reply)
        numbers = itertools.count()

        async def publish_one() -> None:
            subject = f"{inbox}.{next(numbers)}"
            await nc.publish(CHECK_SUBJECT, order(account), reply=subject)
            sent[subject] = time.monotonic()  # in the client's buffer: the next flush sends it

        stop = asyncio.Event()

        async def sender() -> None:
            while not stop.is_set():
                await publish_one()
                await asyncio.sleep(0.001)

        task = asyncio.create_task(sender())
        try:
            await wait_for(lambda: len(answered) >= 20, 5.0, message="no replies before SIGTERM")
            for _ in range(500):  # a burst, so that many checks are in flight at the signal
                await publish_one()
            published = set(sent)
            await nc.flush()  # everything in `published` has reached the server
            in_flight = len(published) - len(answered)
            signalled = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            code = await worker.wait_exit(10.0)
            exited = time.monotonic()
        finally:
            stop.set()
            await task
        await nc.flush()  # replies the worker sent before closing are delivered before the PONG

        assert code == 0, f"worker exited {code}{worker.tail()}"
        missing = sorted(published - answered.keys())
        assert not missing, f"{len(missing)} of {len(published)} checks sent before SIGTERM lost"
        assert all(r["approved"] for r in answered.values())
        assert in_flight > 0, "nothing was in flight at the signal: the test proves nothing"
        late = len(sent) - len(published)
        print(
            f"\nSIGTERM with {in_flight} checks in flight: exit 0 after "
            f"{(exited - signalled) * 1000:.0f} ms; all {len(published)} sent before it "
            f"answered; {late} sent after it"
        )
    finally:
        await nc.close()


async def test_cli_when_account_stopped_and_auto_tripped_then_status_shows_and_clear_clears_both(
    nats_server: NatsServer,
) -> None:
    bucket = unique("rc_")
    env = risk_env(nats_server.url, bucket)
    account = unique("BOTH-")
    nc = await connect(nats_server.url)
    try:
        tripped = await run_cli(
            env, "emergency", "trip", "--reason", "desk", "--by", "alice", "--account", account
        )
        assert tripped.returncode == 0, tripped
        kv = await open_bucket(nc.jetstream(), bucket)
        auto = StateValue(TradingState.REDUCING, "breaker", "worker-7", 1, StateSource.POLICY)
        await write_state(kv, auto_key(account), auto)  # what a worker's automatic trip writes

        status = await run_cli(env, "emergency", "status", "--account", account)
        assert status.returncode == 0, status
        lines = status.stdout.splitlines()
        assert any(f"account.{account}" in x and "alice" in x for x in lines), status.stdout
        assert any(f"auto.{account}" in x and "worker-7" in x for x in lines), status.stdout

        cleared = await run_cli(
            env, "emergency", "clear", "--reason", "ok", "--by", "bob", "--account", account
        )
        assert cleared.returncode == 0, cleared
        assert f"account {account} → ACTIVE" in cleared.stdout, cleared
        assert f"auto {account} → ACTIVE" in cleared.stdout, cleared
        for key in (account_key(account), auto_key(account)):
            value, _ = await read_state(kv, key)
            assert value is not None and value.state is TradingState.ACTIVE, key
    finally:
        await nc.close()
