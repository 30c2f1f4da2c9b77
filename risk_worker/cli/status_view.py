"""``risk-worker status``: instances, trading states and account risk on one screen.

Account figures come from the Redis snapshots when ``RISK_REDIS_URL`` is set (what every
instance wrote in the last three monitor intervals), otherwise from ``risk.metrics`` heard for
``RISK_METRICS_MAX_INTERVAL`` plus 1.5 monitor intervals (an unchanged account is republished
at least that often). Both are the workers' own published figures, never recomputed here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from risk_worker.adapters import operator
from risk_worker.adapters.discovery import SERVICE_NAME
from risk_worker.adapters.event_stream import STREAM
from risk_worker.adapters.input_stream import STREAM as INPUTS_STREAM
from risk_worker.cli.restrict import gather_restricted, render_restricted
from risk_worker.domain.restricted import Restriction
from risk_worker.domain.trading_state import StateValue
from risk_worker.service.settings import Settings

_LEVEL_ORDER = {"BREACHED": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3}


class StatusView(msgspec.Struct):
    """What the screen shows; ``accounts`` maps account id → its metrics fields."""

    instances: list[dict[str, Any]]
    states: list[tuple[str, StateValue | None, int]]
    accounts: dict[str, dict[str, Any]]
    source: str
    restricted: list[tuple[str, Restriction, int]] = msgspec.field(default_factory=list)
    streams: list[StreamReplicas] = msgspec.field(default_factory=list)


class StreamReplicas(msgspec.Struct, frozen=True):
    """One JetStream stream's replication as the server reports it (``stream_info``).

    Attributes:
        stream: ``KV_<bucket>``, ``RISK_EVENTS`` or ``RISK_INPUTS``.
        replicas: configured ``num_replicas``; None when the stream does not exist (or cannot
            be read: ``detail`` says why).
        detail: the leader and each replica with its state (``current`` or how far behind),
            or the reason there is none.
    """

    stream: str
    replicas: int | None
    detail: str


async def gather_streams(nc: Any, bucket: str) -> list[StreamReplicas]:
    """The trading-state bucket's, ``RISK_EVENTS``' and ``RISK_INPUTS``' replica counts,
    leaders and replicas."""
    js, found = nc.jetstream(), []
    for name in (f"KV_{bucket}", STREAM, INPUTS_STREAM):
        try:
            info = await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            found.append(StreamReplicas(name, None, "not created yet"))
            continue
        except nats.errors.Error as exc:
            found.append(StreamReplicas(name, None, f"unreadable: {exc!r}"))
            continue
        cluster = info.cluster
        if cluster is None or not cluster.leader:
            detail = "single server" if cluster is None else "no leader"
        else:
            peers = [f"{cluster.leader} (leader)"] + [
                f"{p.name} ({_peer_state(p)})" for p in cluster.replicas or []
            ]
            detail = ", ".join(peers)
        found.append(StreamReplicas(name, info.config.num_replicas or 1, detail))
    return found


async def gather_status(settings: Settings, wait: float | None = None) -> StatusView:
    """Ask NATS (services, the KV bucket) and Redis or ``risk.metrics``.

    Args:
        settings: where NATS, the bucket and Redis are.
        wait: seconds to listen to ``risk.metrics`` (default ``RISK_METRICS_MAX_INTERVAL`` + 1.5
            monitor intervals, ≥ 1 s).
    """
    nc = await operator.connect(settings.nats_url, auth=settings.nats_auth)
    try:
        instances = await operator.discover(nc, SERVICE_NAME)
        states = await operator.states(nc, settings.kv_bucket, None)
        restricted = await gather_restricted(nc, settings.kv_bucket)
        streams = await gather_streams(nc, settings.kv_bucket)
        if settings.redis_url:
            accounts, source = await _from_redis(settings), "Redis snapshots"
        else:
            every = settings.metrics_max_interval + 1.5 * settings.monitor_interval
            listen = wait or max(1.0, every)
            accounts, source = await _from_metrics(nc, listen), "risk.metrics"
    finally:
        await nc.close()
    return StatusView(instances, states, accounts, source, restricted, streams)


async def _from_redis(settings: Settings) -> dict[str, dict[str, Any]]:
    from risk_worker.adapters.redis_store import (  # noqa: PLC0415
        RedisSnapshotStore,
        connect_redis,
    )

    store = RedisSnapshotStore(connect_redis(settings.redis_url), settings.monitor_interval)
    try:
        return {a: dict(fields) for a, fields in (await store.read_snapshots()).items()}
    finally:
        with contextlib.suppress(Exception):
            await store.client.aclose()


async def _from_metrics(nc: Any, listen: float) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}

    async def keep(msg: Msg) -> None:
        body = msgspec.json.decode(msg.data)
        latest[body["account_id"]] = body

    sub = await nc.subscribe("risk.metrics", cb=keep)
    await asyncio.sleep(listen)
    await sub.unsubscribe()
    return latest


def _num(value: Any, spec: str) -> str:
    if value in (None, ""):
        return "∞"
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def states_table(states: list[tuple[str, StateValue | None, int]], title: str | None) -> Table:
    """The trading states as a table: scope, state, source, by, reason, KV revision.

    Who and why are the operators' own words: printed as written, never read as rich markup.
    """
    table = Table("scope", "state", "source", "by", "reason", "revision", title=title)
    for key, value, revision in states:
        scope = escape(key.removeprefix("trading_state."))
        if value is None:
            table.add_row(scope, "ACTIVE", "", "", "", str(revision))
        else:
            table.add_row(
                scope,
                value.state,
                value.source,
                escape(value.updated_by),
                escape(value.reason),
                str(revision),
            )
    return table


def render_status(console: Console, view: StatusView) -> None:
    """Print the three tables."""
    instances = Table(
        "worker",
        "id",
        "version",
        "requests",
        "errors",
        "started",
        title=f"{len(view.instances)} risk-worker instance(s)",
    )
    for inst in view.instances:
        eps = (inst.get("stats") or {}).get("endpoints") or [{}]
        instances.add_row(
            (inst.get("metadata") or {}).get("worker_id", ""),
            inst.get("id", ""),
            inst.get("version", ""),
            str(sum(e.get("num_requests", 0) for e in eps)),
            str(sum(e.get("num_errors", 0) for e in eps)),
            str((inst.get("stats") or {}).get("started", "")),
        )
    console.print(instances)
    console.print(states_table(view.states, "trading states"))
    render_restricted(console, view.restricted)
    streams = Table("stream", "replicas", "servers", title="JetStream replication")
    for entry in view.streams:
        count = "—" if entry.replicas is None else str(entry.replicas)
        streams.add_row(entry.stream, count, escape(entry.detail))
    console.print(streams)
    accounts = Table(
        "account",
        "equity",
        "leverage",
        "dd daily",
        "dd max",
        "margin ratio",
        "risk",
        "state",
        title=f"accounts ({view.source})",
    )
    rows = sorted(
        view.accounts.items(),
        key=lambda kv: (_LEVEL_ORDER.get(str(kv[1].get("risk_level")), 9), kv[0]),
    )
    for account_id, m in rows:
        stale = " (stale marks)" if str(m.get("stale_marks")).lower() == "true" else ""
        accounts.add_row(
            account_id,
            _num(m.get("equity"), ",.2f"),
            _num(m.get("leverage"), ".2f"),
            _num(m.get("drawdown_daily"), ".2%"),
            _num(m.get("drawdown_max"), ".2%"),
            _num(m.get("margin_ratio"), ".2f"),
            f"{m.get('risk_level', '')}{stale}",
            str(m.get("trading_state", "")),
        )
    console.print(accounts)


def _peer_state(peer: Any) -> str:
    """``current``, ``offline`` or ``N behind`` (operations the replica has yet to apply)."""
    if peer.offline:
        return "offline"
    return "current" if peer.current else f"{peer.lag or 0} behind"
