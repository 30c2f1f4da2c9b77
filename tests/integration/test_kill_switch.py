"""Issue 12 over a real nats-server: the restricted list, strategy and symbol stops, and a kill
switch that acts (``risk.commands.cancel_all`` once per HALTED revision, reservations released).
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from risk_worker.adapters import operator
from risk_worker.adapters import restricted_list as rl
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.policies import Policy, default_policies
from risk_worker.domain.types import Metric, Operator, PolicyType, TradingState
from risk_worker.wire.outbound import CANCEL_ALL_SUBJECT
from tests.harness import Harness, start_harness, stop_harness
from tests.helpers import connect, wait_for
from tests.procs import (
    WorkerProcess,
    Workers,
    check,
    fund,
    risk_env,
    run_cli,
    unique,
    wait_approved,
)

pytestmark = pytest.mark.timeout(90)

ETH = "ETHUSDT"


async def wait_reason(h: Harness, reason: str | None, *args: Any, **kw: Any) -> dict[str, Any]:
    """Send the same (dry-run) check until its ``rejection_reason`` is ``reason``."""
    last: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal last
        last = await h.check(*args, dry_run=True, **kw)
        return last["rejection_reason"] == reason

    await wait_for(done, 5.0, 0.02, f"never {reason}; last reply {last}")
    return last


async def funded(h: Harness, account: str, balance: float = 100_000.0) -> None:
    await h.pnl(account, balance)
    await h.tick(ETH, 3_000.0)
    await h.tick("BTCUSDT", 50_000.0)
    await h.settle()


# -- the restricted list ------------------------------------------------------------------------


async def test_restricted_symbol_when_listed_then_denied_recorded_counted_reducing_passes(
    own_nats_server: NatsServer, migrated_url: str
) -> None:
    h = await start_harness(own_nats_server.url, database_url=migrated_url)
    try:
        bucket = h.settings.kv_bucket
        await funded(h, "RST1")
        await funded(h, "RST2")
        await h.position("RST1", ETH, 2.0, 3_000.0)
        await h.settle()
        await rl.restrict(h.nc, bucket, ETH, "corporate action", "alice")
        await rl.restrict(h.nc, bucket, "BTCUSDT", "desk limit", "bob", account_id="RST2")

        reply = await wait_reason(h, "restricted_symbol", "RST1", ETH, "BUY", 1.0, 3_000.0)
        assert reply["approved"] is False and reply["risk_level"] == "BREACHED"
        assert "ETHUSDT is restricted (all) by alice: corporate action" in reply["reason"]
        denied = await h.check("RST1", ETH, "BUY", 1.0, 3_000.0, order_id="rst-denied-1")
        assert denied["rejection_reason"] == "restricted_symbol"
        # a strictly reducing order passes; a flip does not
        assert (await h.check("RST1", ETH, "SELL", 2.0, 3_000.0))["approved"] is True
        flip = await h.check("RST1", ETH, "SELL", 3.0, 3_000.0, dry_run=True)
        assert flip["rejection_reason"] == "restricted_symbol"
        # an account's restriction is that account's only
        assert (await h.check("RST1", "BTCUSDT", "BUY", 0.1, 50_000.0))["approved"] is True
        mine = await h.check("RST2", "BTCUSDT", "BUY", 0.1, 50_000.0, dry_run=True)
        assert mine["rejection_reason"] == "restricted_symbol"
        assert "(account RST2) by bob: desk limit" in mine["reason"]

        assert h.metric("risk_order_checks_total", result="denied", reason="restricted_symbol") >= 4
        assert h.metric("risk_violations_total", policy_type="hard", source="pre_trade") >= 4

        async def row() -> asyncpg.Record | None:
            conn = await asyncpg.connect(migrated_url, timeout=5)
            try:
                return await conn.fetchrow(
                    "SELECT * FROM risk_violations WHERE order_id = 'rst-denied-1'"
                )
            finally:
                await conn.close()

        await wait_for(row, 10.0, 0.1, "the restricted_symbol denial never reached PostgreSQL")
        found = await row()
        assert found is not None
        assert (found["policy_id"], found["policy_name"], found["metric"]) == (
            "restricted.ETHUSDT",
            "Restricted Instrument",
            "restricted_symbol",
        )
        assert (found["source"], found["action_taken"], found["account_id"]) == (
            "pre_trade",
            "denied",
            "RST1",
        )
        context = msgspec.json.decode(found["context"])
        assert context == {"symbol": ETH, "rejection_reason": "restricted_symbol"}

        listed = {k: v for k, v, _ in await rl.restrictions(h.nc, bucket)}
        assert set(listed) == {"restricted.ETHUSDT", "restricted.account.RST2.BTCUSDT"}
        assert await rl.unrestrict(h.nc, bucket, ETH, "carol") is not None
        await wait_reason(h, None, "RST1", ETH, "BUY", 1.0, 3_000.0)
        assert await rl.unrestrict(h.nc, bucket, ETH, "carol") is None  # already lifted

        # a symbol's stop is recorded with its scope and symbol (migration 0003)
        await operator.trip(h.nc, bucket, TradingState.HALTED, "halt", "dave", None, symbol=ETH)

        async def stop_row() -> asyncpg.Record | None:
            conn = await asyncpg.connect(migrated_url, timeout=5)
            try:
                return await conn.fetchrow("SELECT * FROM emergency_stops WHERE scope = 'symbol'")
            finally:
                await conn.close()

        await wait_for(stop_row, 10.0, 0.1, "the symbol stop never reached PostgreSQL")
        stop = await stop_row()
        assert stop is not None
        assert (stop["symbol"], stop["account_id"], stop["strategy_id"]) == (ETH, None, None)
        assert (stop["state"], stop["triggered_by"]) == ("HALTED", "dave")
    finally:
        await stop_harness(h)


# -- strategy and symbol stops ------------------------------------------------------------------


async def test_strategy_halt_and_symbol_reducing_when_tripped_then_only_their_orders_are_held(
    harness: Harness,
) -> None:
    h = harness
    bucket = h.settings.kv_bucket
    await funded(h, "SCP1")
    await h.position("SCP1", ETH, 2.0, 3_000.0)
    await h.settle()

    await operator.trip(h.nc, bucket, TradingState.HALTED, "runaway", "alice", None, "momo-1")
    reply = await wait_reason(
        h, "emergency_stop_active", "SCP1", "BTCUSDT", "BUY", 0.1, 50_000.0, strategy_id="momo-1"
    )
    assert "strategy momo-1 trading state HALTED: runaway" in reply["reason"]
    other = await h.check(
        "SCP1", "BTCUSDT", "BUY", 0.1, 50_000.0, strategy_id="carry", dry_run=True
    )
    assert other["approved"] is True
    assert (await h.check("SCP1", "BTCUSDT", "BUY", 0.1, 50_000.0, dry_run=True))["approved"]

    await operator.trip(
        h.nc, bucket, TradingState.REDUCING, "halt pending", "bob", None, symbol=ETH
    )
    await wait_reason(h, "reducing_only", "SCP1", ETH, "BUY", 1.0, 3_000.0)
    assert (await h.check("SCP1", ETH, "SELL", 1.0, 3_000.0, dry_run=True))["approved"] is True
    assert (await h.check("SCP1", "BTCUSDT", "BUY", 0.1, 50_000.0, dry_run=True))["approved"]

    await operator.clear(h.nc, bucket, "fixed", "alice", None, strategy_id="momo-1")
    await operator.clear(h.nc, bucket, "open", "bob", None, symbol=ETH)
    await wait_reason(h, None, "SCP1", ETH, "BUY", 1.0, 3_000.0, strategy_id="momo-1")
    rows = {k: v for k, v, _ in await operator.states(h.nc, bucket, None)}
    assert {"trading_state.strategy.momo-1", "trading_state.symbol.ETHUSDT"} <= set(rows)


# -- a kill switch that acts --------------------------------------------------------------------


def revisions(seen: list[dict[str, Any]]) -> list[int]:
    return [int(m["revision"]) for m in seen]


async def test_cancel_all_when_operator_halts_then_published_once_per_revision_and_headroom_freed(
    harness: Harness,
) -> None:
    h = harness
    bucket = h.settings.kv_bucket
    seen = await h.collect(CANCEL_ALL_SUBJECT)
    await funded(h, "KS1", balance=10_000.0)  # margin for 2 BTC at 10 %
    lease = h.worker.lease
    await wait_for(lambda: lease is not None and lease.held, 5.0, message="no monitor lease")
    big = await h.check("KS1", "BTCUSDT", "BUY", 1.5, 50_000.0, order_id="ks-big")
    assert big["approved"] is True
    held_back = await h.check("KS1", "BTCUSDT", "BUY", 1.0, 50_000.0, dry_run=True)
    assert held_back["rejection_reason"] == "insufficient_margin"  # the reservation holds it

    await operator.trip(h.nc, bucket, TradingState.REDUCING, "wind down", "alice", "KS1")
    halt = await operator.trip(h.nc, bucket, TradingState.HALTED, "fat finger", "alice", "KS1")
    await wait_for(lambda: halt in revisions(seen), 5.0, message=f"no cancel_all: {seen}")
    # a later HALT's instruction arrives after any repeat of the first (one publisher, in order)
    later = await operator.trip(h.nc, bucket, TradingState.HALTED, "venue", "bob", None, "s9")
    await wait_for(lambda: later in revisions(seen), 5.0, message=f"no cancel_all: {seen}")
    assert revisions(seen) == [halt, later]  # none for REDUCING, one per HALTED revision
    assert seen[0] == {
        "scope": "account",
        "account_id": "KS1",
        "strategy_id": None,
        "symbol": None,
        "state": "HALTED",
        "reason": "fat finger",
        "triggered_by": "alice",
        "revision": halt,
        "timestamp": seen[0]["timestamp"],
    }
    assert (seen[1]["scope"], seen[1]["strategy_id"], seen[1]["account_id"]) == (
        "strategy",
        "s9",
        None,
    )

    await operator.clear(h.nc, bucket, "resolved", "alice", "KS1")
    # the HALT released ks-big's reservation: the order it held back now fits
    await wait_reason(h, None, "KS1", "BTCUSDT", "BUY", 1.0, 50_000.0)


async def test_cancel_all_when_automatic_trip_halts_then_published_once_by_the_lease_holder(
    harness_factory: Any,
) -> None:
    tight = Policy(
        "lev-stop", "Leverage Stop", PolicyType.EMERGENCY, Metric.LEVERAGE, Operator.LTE, 0.5
    )
    h: Harness = await harness_factory(
        policies=[*default_policies(), tight], auto_trip_state=TradingState.HALTED
    )
    seen = await h.collect(CANCEL_ALL_SUBJECT)
    await funded(h, "AUTO1")
    await h.position("AUTO1", "BTCUSDT", 2.0, 50_000.0)  # leverage 1 > 0.5: emergency
    await h.settle()
    await wait_for(lambda: len(seen) >= 1, 10.0, message="no cancel_all for the automatic trip")
    auto = seen[0]
    assert (auto["scope"], auto["account_id"], auto["state"]) == ("account", "AUTO1", "HALTED")
    assert auto["triggered_by"] == h.settings.worker_id
    later = await operator.trip(h.nc, h.settings.kv_bucket, TradingState.HALTED, "x", "op", None)
    await wait_for(lambda: later in revisions(seen), 5.0, message=f"no cancel_all: {seen}")
    assert revisions(seen) == [auto["revision"], later]
    assert seen[1]["scope"] == "global"


# -- two instances ------------------------------------------------------------------------------


@dataclass
class Pair:
    """Two workers on one bucket, a client, and what it heard: cancel instructions (``seen``)
    and the worker id of each ``risk.metrics`` (the lease holder publishes them)."""

    a: WorkerProcess
    b: WorkerProcess
    nc: Client
    bucket: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)


async def start_pair(workers: Workers, url: str) -> Pair:
    """Start two workers (fast monitor, 1 s lease, every account's risk.metrics at least every
    0.4 s: the tests tell the lease holder by them) and listen once both serve."""
    env = {
        "RISK_MONITOR_INTERVAL": "0.2",
        "RISK_LEASE_TTL": "1.0",
        "RISK_METRICS_MAX_INTERVAL": "0.4",
    }
    bucket = unique("rc_")
    a = workers.start(url, bucket, **env)
    b = workers.start(url, bucket, **env)
    pair = Pair(a, b, await connect(url), bucket)

    async def keep(msg: Msg) -> None:
        pair.seen.append(msgspec.json.decode(msg.data))

    async def publisher(msg: Msg) -> None:
        pair.metrics.append(msgspec.json.decode(msg.data)["worker_id"])

    try:
        await a.wait_serving(pair.nc)
        await b.wait_serving(pair.nc)
        await pair.nc.subscribe(CANCEL_ALL_SUBJECT, cb=keep)
        await pair.nc.subscribe("risk.metrics", cb=publisher)
    except BaseException:
        await pair.nc.close()
        raise
    return pair


async def test_cancel_all_when_two_instances_then_one_instruction_per_revision_and_headroom_freed(
    own_nats_server: NatsServer, workers: Workers
) -> None:
    pair = await start_pair(workers, own_nats_server.url)
    nc, bucket, seen, metrics = pair.nc, pair.bucket, pair.seen, pair.metrics
    try:
        account = unique("KS2-")
        await fund(nc, account, balance=10_000.0)
        await wait_for(lambda: len(metrics) >= 3, 10.0, message="no lease holder publishes")
        await wait_approved(nc, account)
        big = await check(nc, account, quantity=1.5, dry_run=False)
        assert big["approved"] is True
        blocked = await check(nc, account, quantity=1.0)
        assert blocked["rejection_reason"] == "insufficient_margin"

        revs = []
        for n in range(3):
            revs.append(
                await operator.trip(nc, bucket, TradingState.HALTED, f"trip {n}", "alice", account)
            )
        last = await operator.trip(nc, bucket, TradingState.HALTED, "end", "bob", None, symbol="Z")
        await wait_for(lambda: last in revisions(seen), 10.0, message=f"no cancel_all: {seen}")
        assert revisions(seen) == [*revs, last]  # each once: one instance published

        await operator.clear(nc, bucket, "resolved", "alice", account)
        await operator.clear(nc, bucket, "resolved", "bob", None, symbol="Z")
        await wait_approved(nc, account, quantity=1.0)  # both copies of ks-big were released
    finally:
        await nc.close()


async def test_cancel_all_when_holder_frozen_before_announcing_then_new_holder_announces_it(
    own_nats_server: NatsServer, workers: Workers
) -> None:
    """A HALT written while the lease holder is frozen (SIGSTOP: it holds the lease and
    publishes nothing) is announced by the instance that takes the lease over, once."""
    pair = await start_pair(workers, own_nats_server.url)
    a, b, nc, bucket, seen, metrics = pair.a, pair.b, pair.nc, pair.bucket, pair.seen, pair.metrics
    holder = None
    try:
        account = unique("KS3-")
        await fund(nc, account, balance=10_000.0)
        await wait_for(lambda: len(metrics) >= 3, 10.0, message="no lease holder publishes")
        holder, standby = (a, b) if metrics[-1] == a.worker_id else (b, a)
        holder.send_signal(signal.SIGSTOP)
        frozen_at = len(metrics)
        rev = await operator.trip(nc, bucket, TradingState.HALTED, "desk stop", "alice", account)
        await wait_for(lambda: rev in revisions(seen), 10.0, message=f"never announced: {seen}")
        assert revisions(seen) == [rev]
        assert standby.worker_id in metrics[frozen_at:]  # the standby holds the lease now
        await asyncio.sleep(1.0)  # a second announcement would come within a few passes
        assert revisions(seen) == [rev], seen
    finally:
        if holder is not None:
            holder.send_signal(signal.SIGKILL)
        await nc.close()


# -- the command line ---------------------------------------------------------------------------


async def test_cli_restrict_and_scoped_emergency_when_run_then_keys_written_and_shown(
    harness: Harness,
) -> None:
    h = harness
    env = risk_env(h.settings.nats_url, h.settings.kv_bucket, COLUMNS="200")
    await funded(h, "CLI1")
    added = await run_cli(env, "restrict", "add", ETH, "--reason", "halted venue", "--by", "ann")
    assert added.returncode == 0, added
    await wait_reason(h, "restricted_symbol", "CLI1", ETH, "BUY", 1.0, 3_000.0)
    listed = await run_cli(env, "restrict", "list")
    assert "ETHUSDT" in listed.stdout and "halted venue" in listed.stdout, listed
    tripped = await run_cli(
        env, "emergency", "trip", "--reason", "algo bug", "--by", "ann", "--strategy", "mm-2"
    )
    assert tripped.returncode == 0 and "strategy mm-2 → HALTED" in tripped.stdout, tripped
    shown = await run_cli(env, "emergency", "status", "--strategy", "mm-2")
    assert "strategy.mm-2" in shown.stdout and "algo bug" in shown.stdout, shown
    status = await run_cli(env, "status", "--wait", "0.2")
    assert status.returncode == 0, status
    assert "restricted list (1)" in status.stdout and "strategy.mm-2" in status.stdout, status
    bad = await run_cli(env, "emergency", "trip", "--reason", "r", "--by", "b", "--symbol", "A.*")
    assert bad.returncode == 2 and "bad option" in bad.stderr, bad
    removed = await run_cli(env, "restrict", "remove", ETH, "--by", "ann")
    assert removed.returncode == 0 and "no longer restricted" in removed.stdout, removed
    await wait_reason(h, None, "CLI1", ETH, "BUY", 1.0, 3_000.0)
