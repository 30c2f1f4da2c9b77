"""A kill switch that acts: what a HALT does besides denying orders (issue 12).

Every trading-state entry that sets HALTED (any scope: global, account — the operators' or the
workers' automatic key —, strategy — the operators' key, every account, or the workers'
automatic trip of the strategy on one account —, symbol; one KV revision) is seen by every
instance's watcher. Each instance then releases its reservations in that scope (the orders
they stood for are to be cancelled, so their headroom is free again); the instance that holds
the monitor lease alone publishes ``CancelAllMsg`` on ``risk.commands.cancel_all``, so the
OMS gets one cancel instruction per revision, for operator trips and automatic ones alike
(FIA's kill switch: stop new orders *and* cancel working ones; ESMA RTS 6 art. 12).

A revision is seen once per instance (the copy ignores revisions it already holds); a watcher
rebuilt after a bucket reset delivers the current values again, so the holder may repeat the
instruction of a HALT still in force then (cancelling twice is harmless; the OMS keys on
``revision``).

A HALT written while the lease changes hands (the holder died, or is frozen, before it
published) is not lost: every instance listens on ``risk.commands.cancel_all`` and keeps the
HALTs it saw and nobody announced; the instance that takes the lease announces those still in
force and written within :data:`CATCH_UP_WINDOW_MS` (by the writer's clock) in its first pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from risk_worker.adapters.lease import Lease
from risk_worker.adapters.nats_service import WorkerService, now_ms
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.trading_state import StateValue
from risk_worker.wire.outbound import CANCEL_ALL_SUBJECT, CancelAllMsg, cancel_all_msg

log = logging.getLogger("risk_worker.kill_switch")

CATCH_UP_WINDOW_MS = 60_000
"""How old a HALT (its ``updated_at``, the writer's clock) a new lease holder still announces
when it saw nobody announce it: a lease handover takes ``RISK_LEASE_TTL`` plus a monitor
interval (seconds); the rest is room for clock skew. Older unannounced HALTs are dropped (a
holder long since in office would have announced them)."""


class _Announced(msgspec.Struct):
    """The part of a ``CancelAllMsg`` seen on the subject that matters here."""

    revision: int


class KillSwitch:
    """Acts on HALT transitions seen by the trading-state watcher.

    Args:
        engine: the decision core (its reservations are released).
        lease: the monitor lease, when there is one yet (None: not publishing).
        service: the NATS service that publishes, when started (None: not publishing).
        spawn: starts a background coroutine owned by the worker (the publish).
    """

    def __init__(
        self,
        engine: RiskEngine,
        lease: Callable[[], Lease | None],
        service: Callable[[], WorkerService | None],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._engine = engine
        self._lease = lease
        self._service = service
        self._spawn = spawn
        self.published = 0
        """Cancel instructions this instance published (one per HALTED revision it saw while
        holding the lease, or caught up when it took the lease)."""
        self._unannounced: dict[int, tuple[str, CancelAllMsg]] = {}
        self._decoder = msgspec.json.Decoder(_Announced)

    async def start(self, nc: Client) -> None:
        """Listen on ``risk.commands.cancel_all``: what any instance announced needs no
        catching up."""
        await nc.subscribe(CANCEL_ALL_SUBJECT, cb=self._on_announced)

    async def _on_announced(self, msg: Msg) -> None:
        try:
            revision = self._decoder.decode(msg.data).revision
        except (msgspec.MsgspecError, RecursionError):
            log.debug("ignored an undecodable %s message", CANCEL_ALL_SUBJECT)
            return
        self._unannounced.pop(revision, None)

    def catch_up(self, now_ms: int) -> None:
        """This instance has just taken the lease (its copy confirmed): announce each HALT it
        saw that nobody announced, still in force at that revision and written within
        :data:`CATCH_UP_WINDOW_MS` of ``now_ms``."""
        pending, self._unannounced = self._unannounced, {}
        service = self._service()
        if service is None:
            return
        states = self._engine.states
        for revision, (key, cancel) in sorted(pending.items()):
            if states.revision(key) != revision or cancel.timestamp < now_ms - CATCH_UP_WINDOW_MS:
                continue  # changed since (cleared or tripped again), or long past
            self.published += 1
            log.warning(
                "%s HALTED (revision %d) was not announced before this instance took the lease:"
                " %s published",
                key,
                revision,
                CANCEL_ALL_SUBJECT,
            )
            self._spawn(service.publish(CANCEL_ALL_SUBJECT, cancel))

    def on_change(self, key: str, value: StateValue | None, revision: int) -> None:
        """One applied trading-state change (key, value or None for ACTIVE, KV revision)."""
        cancel = cancel_all_msg(key, value, revision, now_ms())
        if cancel is not None:
            self._on_halt(key, cancel)

    def _on_halt(self, key: str, cancel: CancelAllMsg) -> None:
        # an automatic trip of a strategy of an account: scope strategy, both ids set
        scope_id = cancel.strategy_id or cancel.symbol or cancel.account_id
        of_account = cancel.account_id if cancel.scope == "strategy" else None
        released = self._engine.release_reservations(cancel.scope, scope_id, of_account)
        lease, service = self._lease(), self._service()
        publish = lease is not None and lease.held and service is not None
        log.warning(
            "%s%s%s HALTED (revision %d): %d reservation(s) released%s",
            cancel.scope,
            f" {scope_id}" if scope_id else "",
            f" of account {of_account}" if of_account else "",
            cancel.revision,
            released,
            f"; {CANCEL_ALL_SUBJECT} published" if publish else "",
        )
        if publish:
            assert service is not None
            self.published += 1
            self._spawn(service.publish(CANCEL_ALL_SUBJECT, cancel))
        else:  # the holder announces it; if it dies first, the next holder does (catch_up)
            self._unannounced[cancel.revision] = (key, cancel)
