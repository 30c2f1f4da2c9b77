"""An in-process worker on the test's event loop, and a client that feeds it and asks it.

Events are published by the harness and counted, so ``settle()`` can wait until the worker has
processed every one of them before a check is sent (events and checks travel on different
subscriptions, whose order of processing is not defined).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from risk_worker.domain.policies import Policy
from risk_worker.service.policy_source import StaticPolicySource
from risk_worker.service.settings import Settings
from risk_worker.service.worker import Worker
from risk_worker.wire.audit import StateChangeRecord, ViolationRecord
from tests.helpers import connect, wait_for

ENC = msgspec.json.Encoder()


def now_ms() -> int:
    """Wall clock in ms since the epoch."""
    return time.time_ns() // 1_000_000


def metric_sum(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def settings_for(url: str, **overrides: Any) -> Settings:
    """Settings for a test worker: its own bucket and id, fast monitor and confirmation."""
    values: dict[str, Any] = {
        "nats_url": url,
        "worker_id": f"test-{uuid.uuid4().hex[:8]}",
        "kv_bucket": f"rc_{uuid.uuid4().hex[:10]}",
        "monitor_interval": 0.1,
        "state_confirm_interval": 0.2,
        "state_max_age": 2.0,
        "nats_connect_timeout": 5.0,
        "http_port": 0,
    }
    values.update(overrides)
    return Settings(**values)


class Harness:
    """A started worker plus a client connection."""

    def __init__(self, worker: Worker, nc: Client) -> None:
        self.worker = worker
        self.nc = nc
        self.published = 0

    @property
    def settings(self) -> Settings:
        """The worker's settings."""
        return self.worker.settings

    async def publish(self, subject: str, body: dict[str, Any] | bytes) -> None:
        """Publish one event (counted for ``settle``)."""
        data = body if isinstance(body, bytes) else ENC.encode(body)
        await self.nc.publish(subject, data)
        self.published += 1

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of a Prometheus metric (``*_total``) matching ``labels``."""
        return metric_sum(self.worker.metrics.registry, name, **labels)

    async def collect(self, subject: str) -> list[dict[str, Any]]:
        """Every message on ``subject`` from now on, decoded, in a list that fills up."""
        seen: list[dict[str, Any]] = []

        async def cb(msg: Msg) -> None:
            seen.append(msgspec.json.decode(msg.data))

        await self.nc.subscribe(subject, cb=cb)
        await self.nc.flush()
        return seen

    def processed(self) -> int:
        """Events the worker has processed (applied, ignored or dropped)."""
        return int(self.metric("risk_events_total") + self.metric("risk_events_invalid_total"))

    async def settle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the worker has processed everything this harness published."""
        await self.nc.flush()
        await wait_for(
            lambda: self.processed() >= self.published,
            timeout,
            message=f"worker processed {self.processed()} of {self.published} events",
        )

    async def pnl(self, account: str, balance: float, ts: int | None = None) -> None:
        """``pnl.update`` with a balance."""
        await self.publish(
            "pnl.update", {"account_id": account, "balance": balance, "timestamp": ts or now_ms()}
        )

    async def position(
        self, account: str, symbol: str, qty: float, entry: float, ts: int | None = None
    ) -> None:
        """``positions.update``."""
        await self.publish(
            "positions.update",
            {
                "account_id": account,
                "symbol": symbol,
                "quantity": qty,
                "entry_price": entry,
                "timestamp": ts or now_ms(),
            },
        )

    async def tick(self, symbol: str, price: float) -> None:
        """``market.tick.<symbol>`` with a last price."""
        await self.publish(f"market.tick.{symbol}", {"price": price, "timestamp": now_ms()})

    async def fill(
        self,
        account: str,
        symbol: str,
        side: str,
        qty: float,
        price: float,
        order_id: str,
        fill_id: str | None = None,
        fee: float = 0.0,
    ) -> None:
        """``fills.confirmed``."""
        await self.publish(
            "fills.confirmed",
            {
                "fill_id": fill_id or uuid.uuid4().hex,
                "order_id": order_id,
                "account_id": account,
                "symbol": symbol,
                "side": side,
                "quantity": qty,
                "price": price,
                "fee": fee,
                "timestamp": now_ms(),
            },
        )

    async def request(self, data: bytes, timeout: float = 2.0) -> Msg:  # noqa: ASYNC109
        """Send raw bytes to ``risk.check.order``; the reply message."""
        return await self.nc.request("risk.check.order", data, timeout=timeout)

    async def check(
        self,
        account: str,
        symbol: str,
        side: str,
        quantity: float,
        price: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Send a check and decode the reply."""
        body: dict[str, Any] = {
            "order_id": extra.pop("order_id", uuid.uuid4().hex),
            "account_id": account,
            "symbol": symbol,
            "side": side,
            "quantity": quantity,
            "price": price,
            **extra,
        }
        reply = await self.request(ENC.encode(body))
        decoded: dict[str, Any] = msgspec.json.decode(reply.data)
        return decoded


class ListSink:
    """Keeps audit records in a list (the RiskEventSink protocol)."""

    def __init__(self) -> None:
        self.records: list[ViolationRecord | StateChangeRecord] = []

    def record(self, record: ViolationRecord | StateChangeRecord) -> None:
        """Keep the record."""
        self.records.append(record)


async def start_harness(
    url: str,
    policies: list[Policy] | None = None,
    sink: ListSink | None = None,
    **overrides: Any,
) -> Harness:
    """Start a worker in this event loop and connect a client; wait for a confirmed state."""
    worker = Worker(
        settings_for(url, **overrides),
        None if policies is None else StaticPolicySource(policies, "test"),
        sink,
    )
    await worker.start()
    assert worker.watcher is not None
    watcher = worker.watcher
    await wait_for(watcher.confirmed, 5.0, message="trading state never confirmed")
    inputs = worker.inputs
    assert inputs is not None
    await wait_for(lambda: inputs.caught_up, 10.0, message="the RISK_INPUTS replay never ended")
    nc = await connect(url)
    return Harness(worker, nc)


async def stop_harness(h: Harness) -> None:
    """Close the client and stop the worker (each bounded: a test's teardown must end)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(h.nc.close(), 5.0)
    await asyncio.wait_for(h.worker.stop(), 90.0)
