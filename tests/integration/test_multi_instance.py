"""Several instances, one gate: one metrics publisher at a time, chosen by a lease."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from risk_worker.adapters import operator
from risk_worker.adapters.kv_bucket import open_bucket, read_state
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.trading_state import auto_key
from risk_worker.domain.types import TradingState
from tests.helpers import connect, wait_for
from tests.procs import (
    WorkerProcess,
    Workers,
    check,
    fund,
    order,
    unique,
    wait_approved,
)

INTERVAL = 0.2
EVERY_PASS = "0.001"
"""``RISK_METRICS_MAX_INTERVAL`` below the monitor interval: the holder publishes every account
every pass, so the tests follow who publishes pass by pass."""


async def wait_both_serve(nc: Client, a: WorkerProcess, b: WorkerProcess) -> None:
    """Wait until membership settled: checks of fresh accounts are decided by both workers."""

    async def both_serve() -> bool:
        bodies = [await check(nc, unique("SPREAD-"), timeout=1) for _ in range(16)]
        return {x["worker_id"] for x in bodies} == {a.worker_id, b.worker_id}

    await wait_for(both_serve, 10.0, 0.1, "the two workers never shared the accounts")


async def test_lease_when_publisher_killed_then_other_takes_over_within_5s_never_two_at_once(
    own_nats_server: NatsServer, workers: Workers
) -> None:
    env = {
        "RISK_MONITOR_INTERVAL": str(INTERVAL),
        "RISK_LEASE_TTL": "1.0",
        "RISK_METRICS_MAX_INTERVAL": EVERY_PASS,
    }
    bucket = unique("rc_")
    a = workers.start(own_nats_server.url, bucket, **env)
    b = workers.start(own_nats_server.url, bucket, **env)
    nc = await connect(own_nats_server.url)
    seen: list[tuple[float, str]] = []
    loop = asyncio.get_running_loop()

    async def on_metrics(msg: Msg) -> None:
        body: dict[str, Any] = msgspec.json.decode(msg.data)
        if body["account_id"] == account:
            seen.append((loop.time(), body["worker_id"]))

    account = unique("LEASE-")
    try:
        await a.wait_serving(nc)
        await b.wait_serving(nc)
        await nc.subscribe("risk.metrics", cb=on_metrics)
        await fund(nc, account)
        await wait_for(lambda: len(seen) >= 10, 10.0, message="no risk.metrics")
        publisher = seen[-1][1]
        assert {w for _, w in seen[-8:]} == {publisher}  # one publisher at a time
        victim, survivor = (a, b) if publisher == a.worker_id else (b, a)
        victim.send_signal(signal.SIGKILL)
        killed_at = loop.time()
        await wait_for(
            lambda: seen[-1][1] == survivor.worker_id,
            5.0,
            0.05,
            "the other instance did not take over within 5 s",
        )
        takeover = next(t for t, w in seen if w == survivor.worker_id and t > killed_at)
        await asyncio.sleep(1.0)  # the survivor keeps publishing: time passing is the point
        after = [w for t, w in seen if t > takeover]
        assert set(after) == {survivor.worker_id} and len(after) >= 3
        # Never two publishers for more than one interval: in every window of one interval,
        # at most one distinct publisher (allowing one overlapping window at the handover).
        overlaps = sum(1 for t, _ in seen if len({w for u, w in seen if t <= u < t + INTERVAL}) > 1)
        assert overlaps <= 2, seen
        print(f"\ntakeover {takeover - killed_at:.2f} s after the publisher was killed")
    finally:
        await nc.close()


async def _requests_by_worker(nc: Client) -> dict[str, int]:
    """Requests each instance's check endpoint has received ($SRV.STATS)."""
    found = await operator.discover(nc, "risk-worker")
    return {
        i["metadata"]["worker_id"]: sum(e["num_requests"] for e in i["stats"]["endpoints"])
        for i in found
    }


async def _burst(
    own_nats_server: NatsServer, workers: Workers, concurrent: bool
) -> tuple[int, dict[str, int]]:
    """100 orders of one account over two worker processes; (approved, approvals by worker)."""
    # A 2 % margin rate lets leverage 10 (not margin) be the binding limit: 100k equity,
    # 30k-notional orders: 33 fit (990k), 100 would be 30x.
    env = {"RISK_MARGIN_RATES": "BTCUSDT=0.02"}
    bucket = unique("rc_")
    a = workers.start(own_nats_server.url, bucket, **env)
    b = workers.start(own_nats_server.url, bucket, **env)
    nc = await connect(own_nats_server.url)
    account = unique("RES-")
    try:
        await a.wait_serving(nc)
        await b.wait_serving(nc)
        await fund(nc, account, 100_000.0, 50_000.0)

        await wait_both_serve(nc, a, b)
        await wait_approved(nc, account, price=50_000.0)
        orders = [
            msgspec.json.encode(
                {
                    "order_id": f"o-{i}",
                    "account_id": account,
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "quantity": 0.6,
                    "price": 50_000.0,
                }
            )
            for i in range(100)
        ]
        before = await _requests_by_worker(nc)
        if concurrent:
            replies = await asyncio.gather(
                *(nc.request("risk.check.order", o, timeout=5) for o in orders)
            )
        else:
            replies = [await nc.request("risk.check.order", o, timeout=5) for o in orders]
        bodies = [msgspec.json.decode(r.data) for r in replies]
        approved = [x for x in bodies if x["approved"]]
        by_worker = {
            w: sum(1 for x in approved if x["worker_id"] == w) for w in (a.worker_id, b.worker_id)
        }
        assert len({x["worker_id"] for x in bodies}) == 1  # the account's owner decided all
        after = await _requests_by_worker(nc)
        received = {w: after[w] - before.get(w, 0) for w in after}
        assert all(n > 0 for n in received.values()), received  # spread, then forwarded
        denied = {x["rejection_reason"] for x in bodies if not x["approved"]}
        # past 50 checks in a second the account's owner throttles (Max Order Rate)
        assert denied <= {"policy_violation", "insufficient_margin", "rate_limited"}
        print(f"\napproved {len(approved)} of 100 (limit 33, +1 allowed): {by_worker}")
        return len(approved), by_worker
    finally:
        await nc.close()


async def test_reservations_when_100_sequential_orders_over_two_workers_then_within_limit_plus_one(
    own_nats_server: NatsServer, workers: Workers
) -> None:
    approved, by_worker = await _burst(own_nats_server, workers, concurrent=False)
    assert 32 <= approved <= 34, by_worker


async def test_reservations_when_100_concurrent_orders_over_two_workers_then_within_limit_plus_one(
    own_nats_server: NatsServer, workers: Workers
) -> None:
    # A burst reaches both instances at once; the account's owner decides every one of them.
    approved, by_worker = await _burst(own_nats_server, workers, concurrent=True)
    assert 32 <= approved <= 34, by_worker


THROTTLE_POLICY = """
[[policy]]
name = "Max Order Rate"
type = "hard"
metric = "order_rate"
operator = "lte"
threshold = 5
"""


async def test_throttle_when_burst_of_one_account_over_two_workers_then_exactly_the_limit_passes(
    own_nats_server: NatsServer, workers: Workers, tmp_path: Path
) -> None:
    """Issue 12: the message throttle holds across instances. A burst of 20 live orders of one
    account reaches both instances; each forwards to the account's owner, whose one sliding
    window counts them all: 5 approved (``order_rate lte 5``), 15 ``rate_limited``."""
    policy_file = tmp_path / "throttle.toml"
    policy_file.write_text(THROTTLE_POLICY, encoding="utf-8")
    bucket = unique("rc_")
    a = workers.start(own_nats_server.url, bucket, RISK_POLICY_FILE=str(policy_file))
    b = workers.start(own_nats_server.url, bucket, RISK_POLICY_FILE=str(policy_file))
    nc = await connect(own_nats_server.url)
    account = unique("RATE-")
    try:
        await a.wait_serving(nc)
        await b.wait_serving(nc)
        await fund(nc, account, 100_000.0, 50_000.0)

        await wait_both_serve(nc, a, b)
        await wait_approved(nc, account)  # dry runs: neither counted nor throttled
        before = await _requests_by_worker(nc)
        bursts = [order(account, quantity=0.01, dry_run=False) for _ in range(20)]
        replies = await asyncio.gather(
            *(nc.request("risk.check.order", body, timeout=5) for body in bursts)
        )
        bodies = [msgspec.json.decode(r.data) for r in replies]
        after = await _requests_by_worker(nc)
        received = {w: after[w] - before.get(w, 0) for w in after}
        assert all(n > 0 for n in received.values()), received  # both instances got some
        assert len({x["worker_id"] for x in bodies}) == 1  # the owner decided every one
        assert sum(1 for x in bodies if x["approved"]) == 5
        denied = [x for x in bodies if not x["approved"]]
        assert {x["rejection_reason"] for x in denied} == {"rate_limited"}
        assert sorted(x["violations"][0]["value"] for x in denied) == list(range(6, 21))
    finally:
        await nc.close()


async def test_duplicate_when_retries_reach_two_workers_then_one_reservation_and_changes_denied(
    own_nats_server: NatsServer, workers: Workers
) -> None:
    """Issue 12: duplicate detection holds across instances. Retries of one live order reach
    both instances; the account's owner decides them all: the first reserves, the others are
    idempotent retries (``duplicate: true``, nothing reserved again), other content under the
    same order id is denied ``duplicate_order_id``."""
    bucket = unique("rc_")
    a = workers.start(own_nats_server.url, bucket)
    b = workers.start(own_nats_server.url, bucket)
    nc = await connect(own_nats_server.url)
    account = unique("DUP-")
    try:
        await a.wait_serving(nc)
        await b.wait_serving(nc)
        await fund(nc, account, 100_000.0, 50_000.0)

        await wait_both_serve(nc, a, b)
        await wait_approved(nc, account)
        before = await _requests_by_worker(nc)
        live = order(account, quantity=0.1, dry_run=False, order_id="dup-1")
        replies = await asyncio.gather(
            *(nc.request("risk.check.order", live, timeout=5) for _ in range(12))
        )
        bodies = [msgspec.json.decode(r.data) for r in replies]
        after = await _requests_by_worker(nc)
        received = {w: after[w] - before.get(w, 0) for w in after}
        assert all(n > 0 for n in received.values()), received  # both instances got some
        assert len({x["worker_id"] for x in bodies}) == 1  # the owner decided every one
        assert all(x["approved"] for x in bodies), bodies
        assert sorted(bool(x.get("duplicate")) for x in bodies) == [False] + [True] * 11
        changed = await check(nc, account, quantity=0.2, dry_run=False, order_id="dup-1")
        assert changed["rejection_reason"] == "duplicate_order_id", changed
        other = await check(nc, account, quantity=0.1, dry_run=True, detail="full")
        assert other["post_trade_metrics"]["pending_orders"] == 1, other  # one reservation
    finally:
        await nc.close()


async def test_lease_when_holder_dies_before_writing_a_trip_then_new_holder_trips_in_first_pass(
    own_nats_server: NatsServer, workers: Workers
) -> None:
    """Issue 10, item 13: the standby sees the onset of an emergency breach without tripping;
    the holder is frozen (SIGSTOP: it holds the lease and writes nothing) and then killed. The
    instance that takes the lease over trips the account in its first pass as holder."""
    env = {
        "RISK_MONITOR_INTERVAL": str(INTERVAL),
        "RISK_LEASE_TTL": "3.0",  # the standby sees the onset long before it takes over
        "RISK_BREAKER_THRESHOLD": "100000",  # only the emergency policy can trip here
        "RISK_METRICS_MAX_INTERVAL": EVERY_PASS,
    }
    bucket = unique("rc_")
    a = workers.start(own_nats_server.url, bucket, **env)
    b = workers.start(own_nats_server.url, bucket, **env)
    nc = await connect(own_nats_server.url)
    account = unique("FAILOVER-")
    seen: list[tuple[str, dict[str, Any]]] = []  # (subject, body) of this account, in order

    async def keep(msg: Msg) -> None:
        body: dict[str, Any] = msgspec.json.decode(msg.data)
        if body.get("account_id") == account:
            seen.append((msg.subject, body))

    holder = None
    try:
        await a.wait_serving(nc)
        await b.wait_serving(nc)
        await nc.subscribe("risk.>", cb=keep)
        await fund(nc, account)  # equity 100k: the peak

        def metrics_by(worker_id: str | None = None) -> list[dict[str, Any]]:
            return [
                b
                for s, b in seen
                if s == "risk.metrics" and (worker_id is None or b["worker_id"] == worker_id)
            ]

        await wait_for(lambda: len(metrics_by()) >= 3, 10.0, message="no risk.metrics")
        holder, standby = (a, b) if metrics_by()[-1]["worker_id"] == a.worker_id else (b, a)
        holder.send_signal(signal.SIGSTOP)  # alive, holding the lease, writing nothing
        await nc.publish(
            "pnl.update",
            msgspec.json.encode(
                {"account_id": account, "balance": 70_000.0, "timestamp": time.time_ns() // 10**6}
            ),
        )  # drawdown 30 % > 25 %: the emergency policy's onset, seen by the standby
        await nc.flush()
        kv = await open_bucket(nc.jetstream(), bucket)

        async def tripped() -> bool:
            value, _ = await read_state(kv, auto_key(account))
            return value is not None and value.state is TradingState.REDUCING

        await wait_for(tripped, 10.0, 0.05, f"the new holder never tripped {account}")
        value, _ = await read_state(kv, auto_key(account))
        assert value is not None and value.updated_by == standby.worker_id
        assert value.source.value == "policy"
        # In the new holder's first pass: its trip comes with its first metrics of the account.
        first_trip = next(
            i
            for i, (s, m) in enumerate(seen)
            if s == "risk.alerts.emergency" and m.get("type") == "state_change"
        )
        before = [m for s, m in seen[:first_trip] if s == "risk.metrics"]
        assert [m["worker_id"] for m in before].count(standby.worker_id) <= 1, before
    finally:
        if holder is not None:
            holder.send_signal(signal.SIGKILL)
        await nc.close()
