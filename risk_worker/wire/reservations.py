"""``risk.reservations``: the reservations an instance made, announced in batches.

An instance announces the reservations it made while answering one run of requests (the
messages one subscription had queued) as one :class:`ReservationBatchMsg` of at most
:data:`MAX_RESERVATIONS` reservations, each the :class:`~risk_worker.wire.inbound.ReservationMsg`
it announced alone before (subjects.md §3.13). Receivers still accept a lone ``ReservationMsg``
(what earlier versions publish), so instances of both versions run side by side during an
upgrade.

:func:`batch_bytes` writes a batch from the reservations' encoded JSON without decoding them
again; :func:`parse_reservations` reads either form (and skips the instance's own).
"""

from __future__ import annotations

import functools
from typing import Annotated

import msgspec

from risk_worker.errors import InvalidMessageError
from risk_worker.wire.inbound import ReservationMsg, _decode

MAX_RESERVATIONS = 256
"""The most reservations of one batch message (about 300 bytes each: ≤ 80 kB a message,
well under NATS's 1 MB payload limit). A sender splits larger runs; a receiver drops a batch
that holds more."""


class ReservationBatchMsg(msgspec.Struct, frozen=True, gc=False):
    """``risk.reservations``: the reservations one instance made in one run of requests
    (1 to :data:`MAX_RESERVATIONS`, in the order made); each names the same ``worker_id``."""

    worker_id: str
    reservations: Annotated[
        list[ReservationMsg], msgspec.Meta(min_length=1, max_length=MAX_RESERVATIONS)
    ]


_BATCH = msgspec.json.Decoder(ReservationBatchMsg)
_SINGLE = msgspec.json.Decoder(ReservationMsg)
_ENCODER = msgspec.json.Encoder()


BATCH_TAIL = b"]}"
"""What follows the reservations of a batch (:func:`batch_head` precedes them)."""


@functools.lru_cache(maxsize=16)
def batch_head(worker_id: str) -> bytes:
    """The JSON of a :class:`ReservationBatchMsg` of ``worker_id`` up to its first reservation:
    ``head + b",".join(reservations) + BATCH_TAIL`` is the message."""
    return b'{"worker_id":' + _ENCODER.encode(worker_id) + b',"reservations":['


def batch_bytes(worker_id: str, reservations: list[bytes]) -> bytes:
    """The JSON of a :class:`ReservationBatchMsg` holding ``reservations``.

    Args:
        worker_id: this instance's id (every reservation's ``worker_id``).
        reservations: 1 to :data:`MAX_RESERVATIONS` encoded ``ReservationMsg`` (JSON objects).
    """
    return batch_head(worker_id) + b",".join(reservations) + BATCH_TAIL


def parse_reservations(data: bytes, own: str | None = None) -> list[ReservationMsg]:
    """The reservations of a ``risk.reservations`` message: a batch, or a lone reservation.

    Args:
        data: the message.
        own: this instance's id: a message naming it is this instance's own (NATS delivers
            it back) and gives ``[]``. A batch in the layout :func:`batch_bytes` writes is
            recognised by its first bytes, without decoding it.

    Raises:
        InvalidMessageError: not JSON, a field missing, out of range or of the wrong type
            (in any reservation: the whole message is refused), no reservations or more than
            :data:`MAX_RESERVATIONS`, or a reservation naming another ``worker_id`` than the
            batch (field ``reservations[i].worker_id``).
    """
    if own is not None and data.startswith(batch_head(own)):
        return []
    try:
        batch = _decode(_BATCH, data)
    except InvalidMessageError as exc:
        if exc.reason != "missing_field" or exc.field != "reservations":
            raise
        lone = _decode(_SINGLE, data)  # the form of earlier versions
        return [] if lone.worker_id == own else [lone]
    if batch.worker_id == own:
        return []
    for i, r in enumerate(batch.reservations):
        if r.worker_id != batch.worker_id:
            raise InvalidMessageError(
                f"reservations[{i}].worker_id",
                "out_of_range",
                f"reservation of {r.worker_id!r} in a batch of {batch.worker_id!r}",
            )
    return batch.reservations
