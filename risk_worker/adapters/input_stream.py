"""The ``RISK_INPUTS`` stream: the account events, kept so a restart loses none.

The stream captures ``positions.update``, ``fills.confirmed`` and ``pnl.update`` (not ticks)
as producers publish them on core NATS (nothing changes for them), limits retention by age
(``RISK_INPUTS_MAX_AGE``) and stores on file. The worker consumes it through an ordered push
consumer (ephemeral, flow-controlled, idle heartbeats): each event is applied exactly as a core
subscription would (parse, ``engine.apply_*``, invalid ones counted and dropped) and the stream
sequence of the last one is kept, so the Redis snapshot records what its book includes. The
consumer has a NATS connection of its own: a replay pushes thousands of messages at once, and on
the checks' connection a request would wait behind them (measured: up to 1.2 s).

At start the book is rebuilt by replaying from after the snapshot's sequence (or from the
stream's start): until the sequence reaches the stream's last sequence as of start, the engine
denies every check ``book_replaying``. A message whose sequence was already applied (a consumer
reset delivers from the last one + 1, so it should not happen) is skipped, never applied twice;
an account restored with a later sequence than the replay's start skips the events its state
already includes, remembering their fill ids; the replay starts up to :data:`FILL_LOOKBACK`
events earlier, read for their fill ids only. On a lost consumer (a NATS outage, a server
restart) nats-py recreates it from the last sequence received + 1 once two heartbeats are
missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext

from risk_worker.adapters.ratelog import RateLimitedLog
from risk_worker.adapters.streams import bind_stream
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.strategy_book import STRATEGIES_MAX
from risk_worker.domain.types import ApplyResult
from risk_worker.errors import InvalidMessageError
from risk_worker.wire import inbound

log = logging.getLogger(__name__)

STREAM = "RISK_INPUTS"
POSITIONS_SUBJECT = "positions.update"
FILLS_SUBJECT = "fills.confirmed"
PNL_SUBJECT = "pnl.update"
SUBJECTS = [POSITIONS_SUBJECT, FILLS_SUBJECT, PNL_SUBJECT]
FILL_LOOKBACK = 50_000
"""Events before the snapshot's replay point read again at a restart, for their fill ids only
(nothing applied): a fill the restored state includes, published again by its producer after
that point, is then a duplicate as it was live (fill ids are remembered in memory, not stored).
Reading them costs a restart about 0.9 s before it answers (50,000 fills, the 2-core machine;
docs/performance.md), none when the snapshot is at the stream's start."""
YIELD_EVERY = 128
"""Events handled between two yields to the event loop: a replay (or a burst) never holds the
checks' replies for more than a few milliseconds."""
IDLE_HEARTBEAT_S = 1.0
"""The consumer's idle heartbeat: two missed ones (2 s) recreate a lost consumer."""

__all__ = ["STREAM", "SUBJECTS", "EventCounters", "InputStream", "ensure_inputs_stream"]


class EventCounters(Protocol):
    """What the input stream counts (the service's Prometheus metrics satisfy it)."""

    def event(self, kind: str, result: str = "applied") -> None:
        """Count one valid event of ``kind``; ``result`` applied or why it was not."""

    def invalid_event(self, kind: str, reason: str) -> None:
        """Count one dropped invalid event (``reason``: an ``InvalidMessageError`` code)."""


async def ensure_inputs_stream(
    js: JetStreamContext, max_age_s: float, replicas: int
) -> tuple[int, int]:
    """Bind ``RISK_INPUTS``, creating it (file storage, limits by age) or updating its max age
    and replica count as configured (:func:`~risk_worker.adapters.streams.bind_stream`).

    Returns:
        the stream's first and last sequences now (first > last when it holds no message):
        the replay must reach the last one.

    Raises:
        ServerUnavailableError: the stream can be neither read nor created (naming
            ``RISK_INPUTS_REPLICAS``).
        nats.errors.Error: NATS failed otherwise.
    """
    config = api.StreamConfig(
        name=STREAM,
        subjects=SUBJECTS,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        max_age=max_age_s,
        num_replicas=replicas,
        description="risk-worker inputs: account events replayed at a restart",
    )
    info = await bind_stream(js, config, "RISK_INPUTS_REPLICAS")
    return int(info.state.first_seq), int(info.state.last_seq)


class InputStream:
    """Applies the ``RISK_INPUTS`` events to the engine, in stream order, once each.

    Args:
        js: JetStream context.
        engine: the decision core (its ``book_replaying`` is set while replaying).
        metrics: counts events (valid, ignored, invalid).
        owned: the connection ``js`` belongs to, closed by :meth:`stop` (None: not owned).

    Attributes:
        seq: the stream sequence of the last event handled (applied, ignored or dropped
            as invalid); 0 before any.
        target: the stream's last sequence at start: the replay is over once ``seq`` reaches it.
    """

    def __init__(
        self,
        js: JetStreamContext,
        engine: RiskEngine,
        metrics: EventCounters,
        owned: Client | None = None,
    ) -> None:
        self._js = js
        self._owned = owned
        self._engine = engine
        self._metrics = metrics
        self._ratelog = RateLimitedLog(log)
        self._sub: JetStreamContext.PushSubscription | None = None
        self._skip: dict[str, int] = {}
        self.seq = 0
        self._current = 0
        self.target = 0
        self.replayed = 0
        self.looked_back = 0
        """Events read before the replay point for their fill ids only (:data:`FILL_LOOKBACK`)."""
        self._lookback_from = 0  # the first sequence read for fill ids only; 0: none
        self._run = 0
        self._handlers: dict[str, Callable[[bytes], None]] = {
            POSITIONS_SUBJECT: self._position,
            FILLS_SUBJECT: self._fill,
            PNL_SUBJECT: self._pnl,
        }

    @property
    def caught_up(self) -> bool:
        """Whether the replay at start is over (checks are answered)."""
        return not self._engine.book_replaying

    async def start(
        self,
        first_seq: int,
        last_seq: int,
        replay_from: int | None,
        skip: Mapping[str, int] | None = None,
    ) -> None:
        """Subscribe from ``replay_from`` (None: the stream's start); checks are denied
        ``book_replaying`` until the events up to ``last_seq`` are handled.

        Args:
            first_seq / last_seq: the stream's sequences (from :func:`ensure_inputs_stream`).
            replay_from: the first sequence to apply (the snapshot's sequence + 1).
            skip: account id → the last sequence its restored state includes: that
                account's events up to it are skipped.
        """
        self.target = last_seq
        self._skip = dict(skip or {})
        start = max(first_seq, 1)
        if replay_from is not None:
            self.seq = replay_from - 1
            start = max(start, replay_from - FILL_LOOKBACK)
            self._lookback_from = start if start < replay_from else 0
        # nothing to read when the first sequence to deliver is past the last one
        self._engine.book_replaying = start <= last_seq
        config = api.ConsumerConfig(filter_subjects=list(SUBJECTS))
        if replay_from is None:
            config.deliver_policy = api.DeliverPolicy.ALL
        else:
            config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = start
        log.info(
            "replaying %s from %s to sequence %d%s",
            STREAM,
            "its start" if replay_from is None else f"sequence {replay_from}",
            last_seq,
            f" (fill ids from sequence {start})" if self._lookback_from else "",
        )
        self._sub = await self._js.subscribe(
            POSITIONS_SUBJECT,
            stream=STREAM,
            cb=self._on_msg,
            config=config,
            ordered_consumer=True,
            idle_heartbeat=IDLE_HEARTBEAT_S,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )
        if not self._engine.book_replaying:
            self._done()

    async def stop(self) -> None:
        """Unsubscribe (the ephemeral consumer goes with it), close the owned connection."""
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        if self._owned is not None and not self._owned.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await self._owned.close()

    async def _on_msg(self, msg: Msg) -> None:
        try:  # the stream sequence from the reply subject (v1 and v2, as nats-py reads it)
            seq = int(Msg.Metadata._get_metadata_fields(msg.reply)[5])
        except (ValueError, IndexError, AttributeError, TypeError, nats.errors.Error):
            self._ratelog.warning("no-seq", "a %s message without a stream sequence", STREAM)
            return
        if seq <= self.seq:  # already handled or restored: never apply an event twice
            if self._lookback_from and seq >= self._lookback_from:
                self._look_back(seq, msg)
                await self._yield_now_and_then()
            return
        if seq != self.seq + 1 and self.seq:
            self._ratelog.warning(
                "gap", "%s: sequence %d follows %d (older events expired)", STREAM, seq, self.seq
            )
        handler = self._handlers.get(msg.subject)
        self._current = seq
        try:
            if handler is not None:
                handler(msg.data)
        except Exception:  # one bad event must not stop the stream
            log.exception("applying %s event %d failed; skipped", msg.subject, seq)
        self.seq = seq
        if self._engine.book_replaying:
            self.replayed += 1
            if seq >= self.target:
                self._done()
        await self._yield_now_and_then()  # after the event and its sequence: a snapshot sees both

    async def _yield_now_and_then(self) -> None:
        """Yield to the event loop every :data:`YIELD_EVERY` events (nats-py hands a pending
        message over without yielding)."""
        self._run += 1
        if self._run >= YIELD_EVERY:
            self._run = 0
            await asyncio.sleep(0)

    def _look_back(self, seq: int, msg: Msg) -> None:
        """An event before the replay point (the restored state includes it): its fill id is
        remembered, nothing else; the replay is over once the stream's last sequence as of the
        start is read."""
        self.looked_back += 1
        if msg.subject == FILLS_SUBJECT:
            try:  # validated as live: an id only an invalid event carried is never remembered
                event = inbound.parse_fill(msg.data)
            except InvalidMessageError:
                pass  # dropped and counted when it was live
            else:
                self._engine.remember_fill(event.account_id, event.fill_id)
        if self._engine.book_replaying and seq >= self.target:
            self._done()

    def _done(self) -> None:
        self._engine.book_replaying = False
        self._skip.clear()
        log.info(
            "book rebuilt from %s: %d events replayed, at sequence %d; answering checks",
            STREAM,
            self.replayed,
            self.seq,
        )

    def _skipped(self, account_id: str) -> bool:
        """Whether the account's restored state already includes the current event."""
        return bool(self._skip) and self._skip.get(account_id, 0) >= self._current

    # -- events (each applied synchronously, exactly as on a core subscription) -----------------

    def _invalid(self, kind: str, exc: InvalidMessageError) -> None:
        self._metrics.invalid_event(kind, exc.reason)
        self._ratelog.warning(f"{kind}:{exc.reason}", "dropped invalid %s event: %s", kind, exc)

    def _applied(self, kind: str, result: ApplyResult) -> None:
        self._metrics.event(kind, result.value)
        if result is ApplyResult.STRATEGY_LIMIT:
            self._ratelog.warning(
                f"{kind}:strategy_limit",
                "%s for a new strategy beyond %d strategy books of its account: its strategy "
                "part refused (a fill's account part applied)",
                kind,
                STRATEGIES_MAX,
            )

    def _position(self, data: bytes) -> None:
        try:
            event = inbound.parse_position(data)
        except InvalidMessageError as exc:
            self._invalid(POSITIONS_SUBJECT, exc)
            return
        if not self._skipped(event.account_id):
            self._applied(POSITIONS_SUBJECT, self._engine.apply_position(event))

    def _fill(self, data: bytes) -> None:
        try:
            event = inbound.parse_fill(data)
        except InvalidMessageError as exc:
            self._invalid(FILLS_SUBJECT, exc)
            return
        if self._skipped(event.account_id):  # restored: a repeat of it is a duplicate
            self._engine.remember_fill(event.account_id, event.fill_id)
        else:
            self._applied(FILLS_SUBJECT, self._engine.apply_fill(event))

    def _pnl(self, data: bytes) -> None:
        try:
            event = inbound.parse_pnl(data)
        except InvalidMessageError as exc:
            self._invalid(PNL_SUBJECT, exc)
            return
        if not self._skipped(event.account_id):
            self._applied(PNL_SUBJECT, self._engine.apply_pnl(event))
