"""``risk.reservations`` in batches: what one instance reserves, the others count; a burst of
approvals goes out in fewer messages than checks; a malformed batch is dropped and counted, and
the lone reservation of an earlier version is still applied."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import pytest
from nats.aio.msg import Msg

from risk_worker.adapters.reservation_outbox import RESERVATIONS_SUBJECT
from risk_worker.wire.reservations import MAX_RESERVATIONS
from tests.harness import Harness, now_ms
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory

BURST = 40
"""Live orders of one account sent at once (under the 50 a second ``Max Order Rate``)."""
INVALID = "risk_events_invalid_total"


def order(account: str, order_id: str) -> bytes:
    """A live limit order of 0.01 BTC at the mark (500 quote: the burst fits every limit)."""
    return msgspec.json.encode(
        {
            "order_id": order_id,
            "account_id": account,
            "symbol": "BTCUSDT",
            "side": "BUY",
            "quantity": 0.01,
            "price": 50_000.0,
        }
    )


def reservation(worker_id: str, account: str, order_id: str, **change: Any) -> dict[str, Any]:
    """A ``ReservationMsg`` as another instance announces it."""
    return {
        "worker_id": worker_id,
        "account_id": account,
        "order_id": order_id,
        "symbol": "BTCUSDT",
        "signed_qty": 0.01,
        "increasing_qty": 0.01,
        "price": 50_000.0,
        "margin_rate": 0.1,
        "expires_ms": now_ms() + 60_000,
        "quantity": 0.01,
        "limit_price": 50_000.0,
        "order_type": "LIMIT",
        **change,
    }


def pending(h: Harness, account: str) -> int:
    """Live reservations of ``account`` in ``h``'s book (0 while it does not know it)."""
    acct = h.worker.engine.book.accounts.get(account)
    return 0 if acct is None else len(acct.pending)


async def funded(h: Harness, *others: Harness) -> str:
    """A fresh account with 100,000 and a BTCUSDT mark, known to ``h`` and ``others``."""
    account = f"RB-{uuid.uuid4().hex[:8]}"
    await h.pnl(account, 100_000.0)
    await h.tick("BTCUSDT", 50_000.0)
    await h.settle()
    for other in others:
        await wait_for(
            lambda other=other: (
                account in other.worker.engine.book.accounts
                and "BTCUSDT" in other.worker.engine.book.marks
            ),
            message="the other instance never learned the account",
        )
    return account


async def test_reservations_when_a_burst_over_two_workers_then_batched_and_counted_on_both(
    harness_factory: HarnessFactory,
) -> None:
    a = await harness_factory()
    b = await harness_factory()
    account = await funded(a, b)
    messages: list[dict[str, Any]] = []

    async def keep(msg: Msg) -> None:
        messages.append(msgspec.json.decode(msg.data))

    await a.nc.subscribe(RESERVATIONS_SUBJECT, cb=keep)
    await a.nc.flush()

    replies = await asyncio.gather(
        *(a.request(order(account, f"rb-{i}"), timeout=5.0) for i in range(BURST))
    )

    bodies = [msgspec.json.decode(r.data) for r in replies]
    assert all(x["approved"] for x in bodies), [x.get("reason") for x in bodies]
    by_worker = {
        w: sum(1 for x in bodies if x["worker_id"] == w)
        for w in (a.settings.worker_id, b.settings.worker_id)
    }
    assert all(n > 0 for n in by_worker.values()), by_worker  # both decided some
    for h in (a, b):  # each counts its own and the other's
        await wait_for(
            lambda h=h: pending(h, account) == BURST,
            message=f"{h.settings.worker_id} counts {pending(h, account)} of {BURST} reservations",
        )
    await wait_for(lambda: sum(len(m["reservations"]) for m in messages) == BURST)
    assert len(messages) < BURST, len(messages)  # batched
    assert all(1 <= len(m["reservations"]) <= MAX_RESERVATIONS for m in messages)
    for m in messages:
        assert {r["worker_id"] for r in m["reservations"]} == {m["worker_id"]}
    announced = sorted(r["order_id"] for m in messages for r in m["reservations"])
    assert announced == sorted(f"rb-{i}" for i in range(BURST))
    print(f"\n{BURST} approvals over {by_worker}: {len(messages)} risk.reservations messages")


async def test_reservations_when_batch_malformed_then_dropped_counted_and_nothing_applied(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    account = await funded(harness)
    good = reservation("other-worker", account, "ok-1")
    broken = [
        {"worker_id": "other-worker", "reservations": [good, {**good, "price": -1.0}]},
        {"worker_id": "other-worker", "reservations": [good, {**good, "worker_id": "third"}]},
        {"worker_id": "other-worker", "reservations": []},
        {"worker_id": "other-worker", "reservations": [good] * (MAX_RESERVATIONS + 1)},
        {"worker_id": "other-worker", "reservations": {"0": good}},
    ]
    for body in broken:
        await harness.publish(RESERVATIONS_SUBJECT, body)
    await harness.settle()

    assert harness.metric(INVALID) == len(broken)  # kind "other": not an input subject
    assert harness.metric(INVALID, reason="out_of_range") == 4
    assert harness.metric(INVALID, reason="wrong_type") == 1
    assert pending(harness, account) == 0  # none of a refused batch is applied
    logged = [
        r.getMessage() for r in caplog.records if "invalid risk.reservations" in r.getMessage()
    ]
    assert logged and "reservations[1].price" in logged[0]  # rate-limited: one per reason

    batch = [reservation("other-worker", account, f"ok-{i}") for i in range(3)]
    await harness.publish(
        RESERVATIONS_SUBJECT, {"worker_id": "other-worker", "reservations": batch}
    )
    await harness.publish(RESERVATIONS_SUBJECT, reservation("old-worker", account, "lone-1"))
    # a good batch, and an earlier version's lone one (applied reservations count no event)
    await wait_for(lambda: pending(harness, account) == 4, message="reservations not applied")
    assert harness.metric(INVALID) == len(broken)
