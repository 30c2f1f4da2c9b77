"""W3C ``traceparent`` across NATS: into the reply headers, the check's log lines and its
persisted violation (subjects.md §5.1); a malformed one is ignored."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import asyncpg
import msgspec
import pytest

from risk_worker.client import CheckOrder, RiskClient
from risk_worker.devstack.nats_server import NatsServer
from tests.harness import Harness, start_harness, stop_harness
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
BIG = CheckOrder(account_id="TR1", symbol="BTCUSDT", side="BUY", quantity=100.0, price=50_000.0)


async def described(h: Harness) -> None:
    await h.pnl("TR1", 100_000.0)
    await h.tick("BTCUSDT", 50_000.0)
    await h.settle()


async def test_check_when_traceparent_sent_then_echoed_and_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await described(harness)
    caplog.set_level(logging.INFO, logger="risk_worker.checks")
    async with await RiskClient.connect(harness.settings.nats_url) as client:
        ok = msgspec.structs.replace(BIG, quantity=0.1, order_id="tr-ok", dry_run=True)
        approved = await client.check(ok, traceparent=TP)
        assert approved.approved and approved.traceparent == TP
        denied = await client.check(msgspec.structs.replace(BIG, order_id="tr-big"), traceparent=TP)
        assert not denied.approved and denied.traceparent == TP
        batch = await client.check_batch([ok], traceparent=TP)
        assert batch.traceparent == TP and batch.decisions[0].traceparent == TP
        untraced = await client.check(msgspec.structs.replace(ok, order_id="tr-none"))
        assert untraced.traceparent is None
        for bad in (TP.upper(), "00-garbage", f"ff{TP[2:]}"):
            ignored = await client.check(ok, traceparent=bad)
            assert ignored.approved and ignored.traceparent is None, bad
    raw = await harness.nc.request(
        "risk.check.order", b"{", headers={"traceparent": TP}, timeout=2
    )  # an invalid request: the error reply carries it too
    assert raw.headers is not None and raw.headers.get("traceparent") == TP
    assert raw.headers.get("Nats-Service-Error-Code") == "400"
    lines = [r for r in caplog.records if getattr(r, "order_id", None) == "tr-big"]
    assert lines and getattr(lines[0], "traceparent", None) == TP
    assert getattr(lines[0], "trace_id", None) == TRACE_ID


async def test_denied_check_when_traced_then_violation_row_context_has_it(
    own_nats_server: NatsServer, migrated_url: str
) -> None:
    h = await start_harness(own_nats_server.url, database_url=migrated_url)
    try:
        await described(h)
        async with await RiskClient.connect(h.settings.nats_url) as client:
            traced = msgspec.structs.replace(BIG, order_id="tr-db-1")
            assert (await client.check(traced, traceparent=TP)).rejection_reason
            plain = msgspec.structs.replace(BIG, order_id="tr-db-2")
            assert (await client.check(plain, traceparent="bogus")).rejection_reason

        async def contexts() -> list[dict[str, str]]:
            conn = await asyncpg.connect(migrated_url, timeout=5)
            try:
                rows = await conn.fetch(
                    "SELECT order_id, context FROM risk_violations "
                    "WHERE order_id IN ('tr-db-1', 'tr-db-2') ORDER BY order_id"
                )
            finally:
                await conn.close()
            return [{"order_id": r["order_id"], **json.loads(r["context"])} for r in rows]

        async def both() -> bool:
            return len({c["order_id"] for c in await contexts()}) == 2

        await wait_for(both, 15.0, 0.1, "the violation rows never reached PostgreSQL")
        found = {c["order_id"]: c for c in await contexts()}
        assert found["tr-db-1"]["traceparent"] == TP
        assert found["tr-db-1"]["trace_id"] == TRACE_ID
        assert found["tr-db-1"]["rejection_reason"] == "order_too_large"
        assert "traceparent" not in found["tr-db-2"] and "trace_id" not in found["tr-db-2"]
    finally:
        await stop_harness(h)


async def test_check_when_forwarded_to_the_owner_then_traceparent_still_echoed(
    harness_factory: HarnessFactory,
) -> None:
    bucket = f"rc_{uuid.uuid4().hex[:10]}"
    a = await harness_factory(kv_bucket=bucket)
    b = await harness_factory(kv_bucket=bucket)
    account = f"TRF{uuid.uuid4().hex[:6]}"
    for h in (a, b):
        await h.pnl(account, 100_000.0)
        await h.tick("BTCUSDT", 50_000.0)
        await h.settle()

    def routed() -> bool:  # both see each other: one of them forwards the account
        services = [h.worker.service for h in (a, b)]
        return any(s is not None and s.checks.forward_target(account) for s in services)

    await wait_for(routed, 10.0, 0.05, "the two workers never saw each other")
    order = CheckOrder(
        account_id=account, symbol="BTCUSDT", side="BUY", quantity=0.1, price=50_000.0,
        dry_run=True,
    )  # fmt: skip
    async with await RiskClient.connect(a.settings.nats_url) as client:
        decisions = await asyncio.gather(
            *(
                client.check(msgspec.structs.replace(order, order_id=f"f-{i}"), traceparent=TP)
                for i in range(20)
            )
        )
        batches = await asyncio.gather(
            *(client.check_batch([order], traceparent=TP) for _ in range(10))
        )
    assert len({d.worker_id for d in decisions}) == 1  # the owner decided every one
    assert all(d.approved and d.traceparent == TP for d in decisions)
    assert all(bd.approved and bd.traceparent == TP for bd in batches)
