"""Rebuilding the book at start: the Redis snapshot, then the ``RISK_INPUTS`` replay.

Order: bind (or create) ``RISK_INPUTS`` and read its last sequence → restore the Redis snapshot
(each account with the last sequence its state includes) → subscribe from the snapshot's
sequence + 1, or from the stream's start without one. Until the events up to the last sequence
as of start are applied, checks are denied ``book_replaying``, the monitor skips its passes and
no snapshot is written; ``/ready`` reports ``inputs: replaying``.
"""

from __future__ import annotations

import logging

from nats.aio.client import Client
from nats.js.client import JetStreamContext

from risk_worker.adapters.input_stream import InputStream, ensure_inputs_stream
from risk_worker.domain.engine import RiskEngine
from risk_worker.service.nats_connect import connect_worker
from risk_worker.service.observability import Metrics
from risk_worker.service.settings import Settings
from risk_worker.service.snapshot_task import SnapshotKeeper
from risk_worker.service.startup import startup_step

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
    first_seq, last_seq = await startup_step(
        "RISK_INPUTS", ensure_inputs_stream, js, s.inputs_max_age, s.inputs_replicas
    )
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
    await startup_step(
        "the RISK_INPUTS consumer", inputs.start, first_seq, last_seq, replay_from, skip
    )
    return inputs, snapshots


async def _connect(s: Settings) -> Client:
    """The consumer's own connection (same server, credentials and reconnect policy as the
    worker's), so a replay's flood never sits in front of a check request."""

    async def error(exc: Exception) -> None:
        log.warning("NATS error on the RISK_INPUTS connection: %r", exc)

    return await connect_worker(
        s, f"risk-worker {s.worker_id} inputs", "open the RISK_INPUTS connection", error_cb=error
    )
