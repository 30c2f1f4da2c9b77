"""Reservations announced in batches: each batch before the replies that wait for it, bounded,
flushed at the end of a run of requests; and both wire forms read back."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import nats.errors
import pytest

from risk_worker.adapters.reservation_outbox import RESERVATIONS_SUBJECT, ReservationOutbox
from risk_worker.errors import InvalidMessageError
from risk_worker.wire.inbound import ReservationMsg
from risk_worker.wire.reservations import MAX_RESERVATIONS, batch_bytes, parse_reservations

WORKER = "w-1"


class RecordingClient:
    """Records what is published, in order; fails every publish once told to."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, str] | None]] = []
        self.closed = False

    async def publish(
        self, subject: str, payload: bytes = b"", reply: str = "", headers: Any = None
    ) -> None:
        if self.closed:
            raise nats.errors.ConnectionClosedError
        self.sent.append((subject, payload, headers))


def encoded(order_id: str, worker_id: str = WORKER) -> bytes:
    """One encoded ``ReservationMsg``."""
    return msgspec.json.encode(
        ReservationMsg(worker_id, "ACC1", order_id, "BTCUSDT", 1.0, 1.0, 100.0, 0.1, 5)
    )


def outbox(max_reservations: int = MAX_RESERVATIONS) -> tuple[ReservationOutbox, RecordingClient]:
    nc = RecordingClient()
    return ReservationOutbox(nc, WORKER, max_reservations), nc  # type: ignore[arg-type]


def announced(payload: bytes) -> list[str]:
    return [r.order_id for r in parse_reservations(payload)]


def test_send_when_a_run_of_approvals_then_one_batch_before_their_replies() -> None:
    box, nc = outbox()

    async def run() -> None:
        assert await box.send([encoded("o1")], "_INBOX.1", b"r1", None, more=2)  # held
        assert await box.send([], "_INBOX.2", b"r2", None, more=1)  # reserved nothing: at once
        assert await box.send([encoded("o3"), encoded("o4")], "_INBOX.3", b"r3", {"h": "1"}, 0)
        await box.settle(more=2)  # more queued behind: keep holding
        assert len(box.held) == 2
        await box.settle(more=0)  # the run ends

    asyncio.run(run())
    subjects = [s for s, _, _ in nc.sent]
    assert subjects == ["_INBOX.2", RESERVATIONS_SUBJECT, "_INBOX.1", "_INBOX.3"]
    assert announced(nc.sent[1][1]) == ["o1", "o3", "o4"]
    assert nc.sent[3] == ("_INBOX.3", b"r3", {"h": "1"})
    assert box.held == [] and box.messages == 1


def test_send_when_alone_then_announced_and_answered_at_once() -> None:
    box, nc = outbox()
    asyncio.run(box.send([encoded("o1")], "_INBOX.1", b"r1", {"traceparent": "x"}, more=0))
    assert [s for s, _, _ in nc.sent] == [RESERVATIONS_SUBJECT, "_INBOX.1"]
    assert announced(nc.sent[0][1]) == ["o1"]
    assert nc.sent[1] == ("_INBOX.1", b"r1", {"traceparent": "x"})
    assert box.held == [] and box.messages == 1


def test_send_when_the_bound_is_reached_then_flushed_at_once_in_bounded_messages() -> None:
    box, nc = outbox(max_reservations=3)

    async def run() -> None:
        await box.send([encoded("a"), encoded("b")], "_INBOX.1", b"r1", None, more=5)
        assert len(box.held) == 1
        await box.send([encoded(c) for c in "cdefg"], "_INBOX.2", b"r2", None, more=4)  # 7 ≥ 3

    asyncio.run(run())
    assert [s for s, _, _ in nc.sent] == [RESERVATIONS_SUBJECT] * 3 + ["_INBOX.1", "_INBOX.2"]
    assert [announced(p) for _, p, _ in nc.sent[:3]] == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert box.held == []


def test_send_when_announcing_fails_then_the_replies_waiting_for_it_are_dropped() -> None:
    box, nc = outbox()

    async def run() -> None:
        await box.send([encoded("o1")], "_INBOX.1", b"r1", None, more=1)
        nc.closed = True
        await box.settle(more=0)  # does not raise
        assert not await box.send([encoded("o2")], "_INBOX.2", b"r2", None, more=0)
        assert not await box.send([], "_INBOX.3", b"r3", None, more=0)

    asyncio.run(run())
    assert nc.sent == [] and box.held == []  # no approval the others have not heard of


def test_parse_when_batch_or_lone_then_its_reservations_and_own_skipped() -> None:
    lone = encoded("o1", "other")
    batch = batch_bytes("other", [encoded("o2", "other"), encoded("o3", "other")])
    assert [r.order_id for r in parse_reservations(lone)] == ["o1"]
    assert [r.order_id for r in parse_reservations(batch, own=WORKER)] == ["o2", "o3"]
    assert parse_reservations(batch, own="other") == []
    assert parse_reservations(lone, own="other") == []
    assert msgspec.json.decode(batch)["worker_id"] == "other"


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (b"{", "$", "malformed_json"),
        (b"[]", "$", "wrong_type"),
        (b'{"worker_id": "x", "reservations": []}', "reservations", "out_of_range"),
        (b'{"worker_id": "x", "reservations": null}', "reservations", "wrong_type"),
        (b'{"reservations": [{}]}', "worker_id", "missing_field"),
        (batch_bytes("x", [encoded("o", "y")]), "reservations[0].worker_id", "out_of_range"),
        (batch_bytes("x", [encoded("o", "x")] * (MAX_RESERVATIONS + 1)), "reservations", ""),
        (
            batch_bytes("x", [encoded("o", "x"), b'{"worker_id": "x"}']),
            "account_id",  # a missing field is named alone, as in every message
            "missing_field",
        ),
    ],
)
def test_parse_when_batch_malformed_then_refused_whole(
    data: bytes, field: str, reason: str
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        parse_reservations(data, own="me")
    assert caught.value.field.startswith(field), caught.value
    assert not reason or caught.value.reason == reason
