"""The worker answers only reply subjects under an inbox prefix it accepts (issue 10, item 2).

A request whose reply subject is a ``$KV`` key would otherwise have the worker write its reply
into the trading-state bucket: a reply read back as a trading state is undecodable, reads as
HALTED, and stops all trading. Every such request is dropped, counted in
``risk_requests_dropped_total{reason}`` and logged (rate-limited).

Ordering makes the tests deterministic: requests on one subscription are handled one after the
other, so once a follow-up request is answered the dropped ones were handled; a JetStream put
acknowledged after that is stored after anything the worker published into the bucket before.
"""

from __future__ import annotations

import logging
import uuid

import msgspec
import nats.errors
import nats.js.errors
import pytest
from nats.js.kv import KeyValue

from risk_worker.adapters.kv_bucket import read_state
from risk_worker.adapters.membership import OWNER_SUBJECT_PREFIX
from risk_worker.domain.trading_state import GLOBAL_KEY, account_key
from tests.harness import Harness, now_ms
from tests.helpers import connect
from tests.integration.conftest import HarnessFactory

DROPPED = "risk_requests_dropped_total"
ENC = msgspec.json.Encoder()


def order(account: str) -> bytes:
    return ENC.encode(
        {
            "order_id": uuid.uuid4().hex,
            "account_id": account,
            "symbol": "BTCUSDT",
            "side": "BUY",
            "quantity": 0.1,
            "price": 50_000.0,
        }
    )


async def bucket_of(h: Harness) -> KeyValue:
    return await h.nc.jetstream(timeout=5.0).key_value(h.settings.kv_bucket)


async def stored_after_the_worker(kv: KeyValue) -> None:
    """An acknowledged put: whatever the worker published into the bucket before is stored."""
    sentinel = {"state": "ACTIVE", "reason": "sentinel", "updated_at": now_ms()}
    await kv.put(account_key("sentinel-" + uuid.uuid4().hex[:6]), ENC.encode(sentinel))


async def assert_key_never_written(kv: KeyValue, key: str) -> None:
    await stored_after_the_worker(kv)
    assert await read_state(kv, key) == (None, 0), f"the worker wrote its reply into {key}"
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get(key)


def drop_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "reply subject" in r.getMessage()
    ]


@pytest.mark.parametrize("services_protocol", [True, False], ids=["services", "plain"])
@pytest.mark.parametrize("key", [GLOBAL_KEY, account_key("ACC-VICTIM")], ids=["global", "account"])
async def test_check_when_reply_subject_is_a_kv_key_then_dropped_counted_and_bucket_unchanged(
    harness_factory: HarnessFactory,
    caplog: pytest.LogCaptureFixture,
    services_protocol: bool,
    key: str,
) -> None:
    caplog.set_level(logging.WARNING)
    h = await harness_factory(services_protocol=services_protocol)
    kv = await bucket_of(h)
    await h.pnl("ACC-1", 1_000_000.0)
    await h.settle()
    injected = f"$KV.{h.settings.kv_bucket}.{key}"

    for _ in range(3):
        await h.nc.publish("risk.check.order", order("ACC-1"), reply=injected)
    follow_up = msgspec.json.decode((await h.request(order("ACC-1"))).data)

    assert follow_up["approved"] is True  # an accepted inbox still gets its answer
    await assert_key_never_written(kv, key)
    assert h.metric(DROPPED, reason="system_subject") == 3
    [line] = drop_lines(caplog)  # rate-limited: one line for the three
    assert injected in line


async def test_owned_check_when_reply_subject_is_a_kv_key_then_dropped(
    harness: Harness,
) -> None:
    kv = await bucket_of(harness)
    owner_subject = OWNER_SUBJECT_PREFIX + harness.settings.worker_id
    injected = f"$KV.{harness.settings.kv_bucket}.{GLOBAL_KEY}"

    await harness.nc.publish(owner_subject, order("ACC-1"), reply=injected)
    follow_up = await harness.nc.request(owner_subject, order("ACC-1"), timeout=2.0)

    assert msgspec.json.decode(follow_up.data)["rejection_reason"] == "unknown_account"
    await assert_key_never_written(kv, GLOBAL_KEY)
    assert harness.metric(DROPPED, reason="system_subject") == 1


@pytest.mark.parametrize("verb", ["PING", "INFO", "STATS"])
async def test_services_request_when_reply_subject_is_a_kv_key_then_dropped(
    harness: Harness, verb: str
) -> None:
    kv = await bucket_of(harness)
    subject = f"$SRV.{verb}.risk-worker"
    injected = f"$KV.{harness.settings.kv_bucket}.{GLOBAL_KEY}"

    await harness.nc.publish(subject, b"", reply=injected)
    follow_up = await harness.nc.request(subject, b"", timeout=2.0)

    assert msgspec.json.decode(follow_up.data)["name"] == "risk-worker"
    await assert_key_never_written(kv, GLOBAL_KEY)
    assert harness.metric(DROPPED, reason="system_subject") == 1


async def test_check_when_reply_subject_is_not_an_inbox_then_nothing_is_published_there(
    harness: Harness,
) -> None:
    alerts = await harness.nc.subscribe("risk.alerts.emergency")  # kept, not consumed
    await harness.nc.flush()

    await harness.nc.publish("risk.check.order", order("ACC-1"), reply="risk.alerts.emergency")
    await harness.nc.publish("risk.check.order", order("ACC-1"))  # no reply subject at all
    await harness.request(order("ACC-1"))  # sent after, so answered after the two

    assert harness.metric(DROPPED, reason="not_an_inbox") == 1
    assert harness.metric(DROPPED, reason="no_reply") == 1
    # A reply published before the follow-up's would be queued here by now.
    assert alerts.pending_msgs == 0


async def test_check_when_reply_under_a_configured_prefix_then_answered_and_others_not(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(reply_prefixes=("_INBOX_oms.",))
    oms = await connect(h.settings.nats_url, inbox_prefix="_INBOX_oms")
    other = await connect(h.settings.nats_url, inbox_prefix="_INBOX_other")
    try:
        reply = await oms.request("risk.check.order", order("ACC-1"), timeout=2.0)
        assert reply.subject.startswith("_INBOX_oms.")
        assert msgspec.json.decode(reply.data)["rejection_reason"] == "unknown_account"

        inbox = other.new_inbox()
        unanswered = await other.subscribe(inbox)
        await other.publish("risk.check.order", order("ACC-1"), reply=inbox)
        await other.flush()
        await h.request(order("ACC-1"))  # handled after the one from `other`
        await other.flush()  # anything the worker sent `other` before is read by now

        assert h.metric(DROPPED, reason="not_an_inbox") == 1
        assert unanswered.pending_msgs == 0
    finally:
        await oms.close()
        await other.close()
