"""``$SRV.PING``, ``$SRV.INFO`` and ``$SRV.STATS`` answered from the worker's own counters are
what nats.micro answered: the same keys in the same order, the same values but for the
instance id, the start time and the processing times, and the same request and error counts.

The reference is the worker's former nats.micro service (``tests/micro_reference.py``) on the
session's server, the worker (a harness) on a server of its own; both get the same requests.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import nats
import pytest

from risk_worker.adapters.nats_service import CHECK_QUEUE, CHECK_SUBJECT
from risk_worker.adapters.reply_guard import ReplyGuard
from risk_worker.devstack.nats_server import NatsServer
from tests.helpers import connect
from tests.integration.conftest import HarnessFactory
from tests.micro_reference import start_micro_service

VERBS = ("PING", "INFO", "STATS")
VARYING = {"id", "started", "processing_time", "average_processing_time"}
"""Fields whose values differ between two instances (compared by type and form only)."""
INVALID = (b"not json", b"[]")


def check(account: str) -> bytes:
    """A dry-run check of an account nobody knows (denied, not an error)."""
    return msgspec.json.encode(
        {
            "order_id": f"o-{account}",
            "account_id": account,
            "symbol": "BTCUSDT",
            "side": "BUY",
            "quantity": 1.0,
            "price": 100.0,
            "dry_run": True,
        }
    )


async def traffic(url: str) -> None:
    """The same requests to whichever implementation serves ``url``: one dropped (reply not
    an inbox), three checks, two invalid checks, an invalid and a valid query."""
    nc = await connect(url)
    try:
        await nc.publish(CHECK_SUBJECT, check("DROPPED"), reply="risk.nowhere")
        for account in ("A1", "A2", "A3"):
            reply = await nc.request(CHECK_SUBJECT, check(account), timeout=2)
            assert msgspec.json.decode(reply.data)["rejection_reason"] == "unknown_account"
        for bad in INVALID:
            reply = await nc.request(CHECK_SUBJECT, bad, timeout=2)
            assert reply.headers is not None and reply.headers["Nats-Service-Error-Code"] == "400"
        reply = await nc.request("risk.query.metrics", b"{}", timeout=2)
        assert reply.headers is not None and reply.headers["Nats-Service-Error-Code"] == "400"
        await nc.request("risk.query.states", b"{}", timeout=2)
    finally:
        await nc.close()


async def answers(url: str) -> dict[str, tuple[dict[str, str] | None, bytes]]:
    """(reply headers, body) of each verb on ``$SRV.<VERB>.risk-worker``, asked with a header;
    the other two subject forms must give the same (but the counters, which they may move)."""
    nc = await connect(url)
    try:
        found = {}
        for verb in VERBS:
            msg = await nc.request(
                f"$SRV.{verb}.risk-worker", b"", timeout=2, headers={"X-Probe": verb}
            )
            found[verb] = (msg.headers, msg.data)
            service_id = json.loads(msg.data)["id"]
            for subject in (f"$SRV.{verb}", f"$SRV.{verb}.risk-worker.{service_id}"):
                other = json.loads((await nc.request(subject, b"", timeout=2)).data)
                assert shape(other) == shape(json.loads(msg.data)), subject
        return found
    finally:
        await nc.close()


def shape(value: Any) -> Any:
    """``value`` with the fields that differ between instances replaced by their form."""
    if isinstance(value, dict):
        return {k: form(k, v) if k in VARYING else shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return value


def form(key: str, value: Any) -> str:
    if key == "id":
        assert isinstance(value, str) and re.fullmatch(r"[0-9A-Za-z]{22}", value), value
        return "<nuid>"
    if key == "started":
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value), value
        return "<time>"
    assert isinstance(value, int) and value >= 0, (key, value)
    return "<ns>"


async def test_srv_answers_when_compared_with_nats_micro_then_identical_but_ids_and_times(
    nats_server: NatsServer, own_nats_server: NatsServer, harness_factory: HarnessFactory
) -> None:
    h = await harness_factory(url=own_nats_server.url)
    service = h.worker.service
    reference_nc = await connect(nats_server.url)
    guard = ReplyGuard((), lambda _reason: None)
    micro = await start_micro_service(
        reference_nc,
        service.checks,
        service.queries,
        CHECK_SUBJECT,
        CHECK_QUEUE,
        h.settings.worker_id,
        guard,
    )
    try:
        await traffic(nats_server.url)
        await traffic(own_nats_server.url)
        old = await answers(nats_server.url)
        new = await answers(own_nats_server.url)
    finally:
        await micro.stop()
        await reference_nc.close()

    for verb in VERBS:
        (old_headers, old_body), (new_headers, new_body) = old[verb], new[verb]
        assert new_headers == old_headers == {"X-Probe": verb}  # the request's, echoed
        old_doc, new_doc = json.loads(old_body), json.loads(new_body)
        assert json.dumps(shape(new_doc)) == json.dumps(shape(old_doc)), verb  # keys in order
        assert new_body == json.dumps(new_doc).encode()  # json.dumps's layout, as nats.micro
        assert new_doc["type"] == f"io.nats.micro.v1.{verb.lower()}_response"
        assert new_doc["metadata"] == {"worker_id": h.settings.worker_id}
    stats = {e["name"]: e for e in json.loads(new["STATS"][1])["endpoints"]}
    assert list(stats) == ["check_order", "check_batch", "query_metrics", "query_states"]
    counts = {name: (e["num_requests"], e["num_errors"]) for name, e in stats.items()}
    assert counts == {
        "check_order": (6, 2),  # the dropped one counts as a request, as nats.micro counted it
        "check_batch": (0, 0),
        "query_metrics": (1, 1),
        "query_states": (1, 0),
    }
    assert stats["check_order"]["last_error"].startswith("$: Expected `object`")
    assert stats["check_order"]["processing_time"] > 0
    assert stats["check_order"]["average_processing_time"] == int(
        stats["check_order"]["processing_time"] / 6
    )
    assert stats["query_states"]["last_error"] == ""


async def test_srv_when_the_service_stopped_then_no_verb_answers_while_connected(
    own_nats_server: NatsServer, harness_factory: HarnessFactory
) -> None:
    h = await harness_factory(url=own_nats_server.url)
    nc = await connect(own_nats_server.url)
    try:
        ping = f"$SRV.PING.risk-worker.{h.worker.service.discovery.id}"  # type: ignore[union-attr]
        assert (await nc.request(ping, b"", timeout=2)).data  # answered while serving
        await h.worker.service.stop()
        assert h.worker.nc is not None and h.worker.nc.is_connected  # still connected
        for verb in VERBS:
            with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
                await nc.request(f"$SRV.{verb}.risk-worker", b"", timeout=0.5)
    finally:
        await nc.close()
