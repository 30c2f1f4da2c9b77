"""The protocol's floor: a bare nats-py echo responder on the check subject.

Run as its own process, ``python -m risk_worker.bench.floor URL [POSITIONS]``. It subscribes
``risk.check.order`` in the queue group ``risk-workers`` on uvloop, decodes every request with
msgspec into the worker's own request struct and replies with a pre-encoded reply of the same
size as the worker's typical reply (an approved ``dry_run`` answer computed once, in process,
by the worker's own check handler over a book of ``POSITIONS`` positions).
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
from risk_worker.wire import inbound

SUBJECT = "risk.check.order"
QUEUE = "risk-workers"
WORKER_POLICIES = 14
"""Policies the bench's worker serves (its policy file): the reply carries their utilization."""


def representative_reply(positions: int) -> bytes:
    """An approved ``dry_run`` reply as the worker encodes it, for a book of ``positions``.

    Args:
        positions: positions held by the account the check names.

    Returns:
        The encoded reply (JSON bytes).
    """
    engine = build_engine(accounts=1, positions=positions, policies=WORKER_POLICIES)
    handler = CheckHandler(engine, lambda: True, WORKER_ID, MAX_REQUEST_BYTES, NullSink())
    return handler.answer(request_bodies(1, 1, positions)[0]).payload


async def serve(url: str, reply: bytes) -> None:
    """Answer every check with ``reply`` until SIGTERM or SIGINT, then drain.

    Args:
        url: NATS server URL.
        reply: the pre-encoded reply sent to every request.
    """
    nc = await nats.connect(url)
    decoder = msgspec.json.Decoder(inbound.CheckRequestMsg)

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
    """Entry point: ``URL [POSITIONS]`` (20 positions unless given)."""
    import uvloop  # noqa: PLC0415

    url = argv[1]
    positions = int(argv[2]) if len(argv) > 2 else 20
    uvloop.run(serve(url, representative_reply(positions)))


if __name__ == "__main__":
    main(sys.argv)
