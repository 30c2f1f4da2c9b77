"""The protocol's floor: a bare nats-py echo responder on the check subject.

Run as its own process, ``python -m risk_worker.bench.floor URL [POSITIONS [full]]``. It subscribes
``risk.check.order`` in the queue group ``risk-workers`` on uvloop, decodes every request with
msgspec into the worker's own request struct and replies with a pre-encoded reply of the same
size as the worker's typical reply: the compact approval (no post-trade metrics, subjects.md
§5.2) of a ``dry_run`` order, computed once, in process, by the worker's own check handler over
a book of ``POSITIONS`` positions. The bench's requests do not ask for the full reply, so the
worker writes replies of that size too and the comparison stays fair; with ``--var`` they ask
for it (to see the VaR) and the bench starts the floor with ``full``: the full reply's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import msgspec
import nats
from nats.aio.msg import Msg

from risk_worker.adapters.check_handler import CheckHandler
from risk_worker.bench.core import (
    MAX_REQUEST_BYTES,
    WORKER_ID,
    NullSink,
    build_engine,
    request_bodies,
)
from risk_worker.wire import check_request

SUBJECT = "risk.check.order"
QUEUE = "risk-workers"
WORKER_POLICIES = 14
"""Policies the bench's worker serves (its policy file): the reply carries their utilization."""


def representative_reply(positions: int, full: bool = False) -> bytes:
    """An approved ``dry_run`` reply as the worker encodes it by default (compact: without
    post-trade metrics), for a book of ``positions``.

    Args:
        positions: positions held by the account the check names.
        full: the full reply instead (the request asks ``detail`` ``full``).

    Returns:
        The encoded reply (JSON bytes).
    """
    engine = build_engine(accounts=1, positions=positions, policies=WORKER_POLICIES)
    handler = CheckHandler(engine, lambda: True, WORKER_ID, MAX_REQUEST_BYTES, NullSink())
    body = request_bodies(1, 1, positions, detail="full" if full else None)[0]
    return handler.answer(body).payload


async def serve(url: str, reply: bytes) -> None:
    """Answer every check with ``reply`` until SIGTERM or SIGINT, then drain.

    Args:
        url: NATS server URL.
        reply: the pre-encoded reply sent to every request.
    """
    nc = await nats.connect(url)
    decoder = msgspec.json.Decoder(check_request.CheckRequestMsg)

    async def on_msg(msg: Msg) -> None:
        # the worker answers an invalid request too: reply all the same
        with contextlib.suppress(msgspec.MsgspecError):
            decoder.decode(msg.data)
        await nc.publish(msg.reply, reply)

    await nc.subscribe(SUBJECT, queue=QUEUE, cb=on_msg)
    await nc.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await nc.drain()


def main(argv: list[str]) -> None:
    """Entry point: ``URL [POSITIONS [full]]`` (20 positions unless given; ``full``: the full
    reply's size)."""
    import uvloop  # noqa: PLC0415

    url = argv[1]
    positions = int(argv[2]) if len(argv) > 2 else 20
    full = len(argv) > 3 and argv[3] == "full"
    uvloop.run(serve(url, representative_reply(positions, full)))


if __name__ == "__main__":
    main(sys.argv)
