"""Announcing reservations in batches, each batch before the replies of the checks that made it.

An approved non-dry-run check reserves headroom, and the other instances must hear of it
(``risk.reservations``) before the client can act on the approval, so that no instance spends
the same headroom. One message per reservation cost a publish here and a decode on every
instance (this one included: NATS delivers its own messages back). Instead, while a
subscription has requests queued behind the one being answered (a run: what one read from the
socket delivered), a reply that carries reservations is *held* with them, and flushed when the
run ends (:meth:`ReservationOutbox.settle`, called after every request) or when
:data:`~risk_worker.wire.reservations.MAX_RESERVATIONS` are held. A flush publishes the held
reservations as one :class:`~risk_worker.wire.reservations.ReservationBatchMsg` (several when
more are held), then the held replies, in that order. A request answered alone (nothing queued,
nothing held) announces its reservations and replies at once, without holding anything.

Holding costs no time: nats-py only appends a publish to its write buffer, which goes to the
socket once the running task gives the event loop back, and a flush happens before that. The
order on the wire is what it was: a reservation reaches the server before the reply it belongs
to, so an instance that gets the client's next request has applied it first.

If announcing fails (the connection closed), the replies waiting for it are dropped: the
requesters get no reply, which is DENIED, rather than an approval the others have not heard of.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import nats.errors
from nats.aio.client import Client

from risk_worker.wire.reservations import BATCH_TAIL, MAX_RESERVATIONS, batch_head

log = logging.getLogger(__name__)

RESERVATIONS_SUBJECT = "risk.reservations"

Reply = tuple[str, bytes, dict[str, str] | None]
"""(reply subject, payload, headers) of a held reply."""


class ReservationOutbox:
    """Reservations and the replies that wait for their announcement.

    Args:
        nc: the worker's connection.
        worker_id: this instance's id (every reservation names it).
        max_reservations: the most reservations of one message (a flush splits more).

    Attributes:
        held: the replies held now, in the order held (read it, do not change it).
        messages: ``risk.reservations`` messages published so far.
    """

    def __init__(
        self, nc: Client, worker_id: str, max_reservations: int = MAX_RESERVATIONS
    ) -> None:
        self._nc = nc
        self._head = batch_head(worker_id)
        self._max = max_reservations
        self._reservations: list[bytes] = []
        self.held: list[Reply] = []
        self.messages = 0

    def batch(self, reservations: Sequence[bytes]) -> bytes:
        """The ``ReservationBatchMsg`` of 1 to ``max_reservations`` encoded reservations."""
        return self._head + b",".join(reservations) + BATCH_TAIL

    def hold(
        self,
        reservations: Sequence[bytes],
        reply: str,
        payload: bytes,
        headers: dict[str, str] | None,
    ) -> bool:
        """Hold a reply until ``reservations`` (encoded ``ReservationMsg``) are announced.

        Returns:
            True when ``max_reservations`` or more are held: flush now.
        """
        self._reservations += reservations
        self.held.append((reply, payload, headers))
        return len(self._reservations) >= self._max

    async def flush(self) -> None:
        """Publish what is held: the reservations (in batches), then the replies.

        Never raises for a closed connection: what could not be sent is logged and dropped.
        """
        reservations, replies = self._reservations, self.held
        self._reservations, self.held = [], []
        if await self.announce(reservations):
            for reply, payload, headers in replies:
                await self.answer(reply, payload, headers)
        else:
            log.warning(
                "%d reply(ies) dropped: their reservations were not announced", len(replies)
            )

    async def announce(self, reservations: Sequence[bytes]) -> bool:
        """Publish ``reservations`` (encoded) in messages of at most ``max_reservations``.

        Returns:
            False when publishing failed (the connection closed; logged).
        """
        try:
            if len(reservations) <= self._max:
                if reservations:
                    await self._nc.publish(RESERVATIONS_SUBJECT, self.batch(reservations))
                    self.messages += 1
                return True
            for start in range(0, len(reservations), self._max):
                chunk = reservations[start : start + self._max]
                await self._nc.publish(RESERVATIONS_SUBJECT, self.batch(chunk))
                self.messages += 1
        except nats.errors.Error as exc:
            log.warning("announcing %d reservation(s) failed: %r", len(reservations), exc)
            return False
        return True

    async def answer(self, reply: str, payload: bytes, headers: dict[str, str] | None) -> bool:
        """Publish one reply; False when the connection closed meanwhile (logged at debug)."""
        try:
            await self._nc.publish(reply, payload, headers=headers)
        except nats.errors.Error as exc:
            log.debug("answering a request failed: %r", exc)
            return False
        return True

    async def send(
        self,
        reservations: Sequence[bytes],
        reply: str,
        payload: bytes,
        headers: dict[str, str] | None,
        more: int,
    ) -> bool:
        """Answer a request whose answer made ``reservations`` (encoded; often none).

        Held when something is held already or ``more`` requests are queued behind it (then
        flushed at once only when enough is held); otherwise announced and answered at once.

        Args:
            reservations: the encoded ``ReservationMsg`` the answer made.
            reply: the request's reply subject (already vetted).
            payload: the reply.
            headers: the reply's headers.
            more: requests the answering subscription has queued (``pending_msgs``).

        Returns:
            False when the reply could not be sent at once (the connection closed).
        """
        if reservations:
            if self.held or more:
                if self.hold(reservations, reply, payload, headers):
                    await self.flush()
                return True
            if not await self.announce(reservations):
                return False
        return await self.answer(reply, payload, headers)

    async def settle(self, more: int) -> None:
        """Flush what is held unless ``more`` requests are queued behind the one just handled.

        Every request handler that may hold a reply calls it last whatever happened
        (``finally``), with its subscription's ``pending_msgs``, when :attr:`held` is not
        empty: so nothing stays held after the run of requests that held it.
        """
        if self.held and not more:
            await self.flush()
