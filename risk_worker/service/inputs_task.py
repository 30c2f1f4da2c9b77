"""Rebuilding the book at start: the Redis snapshot, then the ``RISK_INPUTS`` replay.

Order: bind (or create) ``RISK_INPUTS`` and read its last sequence → restore the Redis snapshot
(each account with the last sequence its state includes) → subscribe from the snapshot's
sequence + 1, or from the stream's start without one. Until the events up to the last sequence
as of start are applied, checks are denied ``book_replaying``, the monitor skips its passes and
no snapshot is written; ``/ready`` reports ``inputs: replaying``.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
from nats.aio.client import Client
from nats.js.client import JetStreamContext

from risk_worker.adapters.input_stream import InputStream, ensure_inputs_stream
from risk_worker.adapters.nats_auth import describe_connect_error, open_connection
from risk_worker.domain.engine import RiskEngine
from risk_worker.errors import ServerUnavailableError
from risk_worker.service.observability import Metrics
from risk_worker.service.settings import Settings
from risk_worker.service.snapshot_task import SnapshotKeeper

log = logging.getLogger(__name__)


async def restore_and_replay(
    js: JetStreamContext, engine: RiskEngine, settings: Settings, metrics: Metrics
) -> tuple[InputStream, SnapshotKeeper | None]:
    """Restore the snapshot (when ``RISK_REDIS_URL`` is set) and start the replay.

    Returns:
        the input stream (replaying; ``caught_up`` once done) and the snapshot keeper.

    Raises:
        nats.errors.Error: ``RISK_INPUTS`` can be neither read nor created.
        ServerUnavailableError: the consumer's own connection cannot be opened.
    """
    s = settings
    first_seq, last_seq = await ensure_inputs_stream(js, s.inputs_max_age, s.inputs_replicas)
    nc = await _connect(s)
    inputs = InputStream(nc.jetstream(), engine, metrics, owned=nc)
    snapshots = None
    replay_from: int | None = None
    skip: dict[str, int] = {}
    if s.redis_url:
        snapshots = SnapshotKeeper(
            engine,
            s.redis_url,
            s.monitor_interval,
            s.snapshot_max_age,
            on_refused=metrics.snapshot_refused,
            inputs_seq=lambda: inputs.seq,
        )
        report = await snapshots.start(last_seq)
        if report is not None:
            replay_from, skip = report.replay_from, report.seqs
    await inputs.start(first_seq, last_seq, replay_from, skip)
    return inputs, snapshots


async def _connect(s: Settings) -> Client:
    """The consumer's own connection (same server, credentials and reconnect policy as the
    worker's), so a replay's flood never sits in front of a check request."""

    async def error(exc: Exception) -> None:
        log.warning("NATS error on the RISK_INPUTS connection: %r", exc)

    try:
        return await asyncio.wait_for(
            open_connection(
                s.nats_url,
                s.nats_auth,
                name=f"risk-worker {s.worker_id} inputs",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                ping_interval=2,
                max_outstanding_pings=2,
                connect_timeout=2,
                error_cb=error,
            ),
            timeout=s.nats_connect_timeout,
        )
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        why = describe_connect_error(exc, s.nats_auth)
        raise ServerUnavailableError(
            f"cannot open the RISK_INPUTS connection to {s.nats_url} within "
            f"{s.nats_connect_timeout} s (RISK_NATS_URL): {why}"
        ) from exc
