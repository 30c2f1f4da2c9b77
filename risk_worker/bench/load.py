"""Load the worker's book through real events on NATS, then wait until it is ready.

Every account gets a ``pnl.update`` (balance) and one ``positions.update`` per symbol; every
symbol gets a ``market.tick.<symbol>`` mark. Figures and names come from
:mod:`risk_worker.bench_core`, so the book matches the in-process microbenchmark's.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import nats.errors
from nats.aio.client import Client

from risk_worker.bench_core import (
    BALANCE,
    POSITION_NOTIONAL,
    account_id,
    mark_price,
    symbol,
    wall_ms,
)

CHECK_SUBJECT = "risk.check.order"
NO_REPLY = (nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError)
_ENC = msgspec.json.Encoder()


class BenchError(RuntimeError):
    """The bench could not run, or a check returned a wrong answer."""


async def publish_marks(nc: Client, positions: int) -> None:
    """Publish a fresh ``market.tick.<symbol>`` mark for every benchmark symbol."""
    now = wall_ms()
    for j in range(positions):
        await nc.publish(
            f"market.tick.{symbol(j)}", _ENC.encode({"price": mark_price(j), "timestamp": now})
        )
    await nc.flush()


async def load_book(nc: Client, accounts: int, positions: int) -> int:
    """Publish marks, balances and positions for ``accounts`` × ``positions``.

    Args:
        nc: connection to the worker's server.
        accounts: accounts ``ACC00000``… to fund.
        positions: positions per account (alternately long and short).

    Returns:
        How many events were published.
    """
    await publish_marks(nc, positions)
    now = wall_ms()
    sent = positions
    for i in range(accounts):
        acct = account_id(i)
        await nc.publish(
            "pnl.update", _ENC.encode({"account_id": acct, "balance": BALANCE, "timestamp": now})
        )
        for j in range(positions):
            price = mark_price(j)
            qty = POSITION_NOTIONAL / price * (1.0 if (i + j) % 2 == 0 else -1.0)
            body = {
                "account_id": acct,
                "symbol": symbol(j),
                "quantity": qty,
                "entry_price": price * 0.99,
                "timestamp": now,
            }
            await nc.publish("positions.update", _ENC.encode(body))
        sent += 1 + positions
    await nc.flush()
    return sent


def probe_body(account: str, positions: int) -> bytes:
    """A small ``dry_run`` limit order on ``account`` (the last symbol, near its mark)."""
    j = positions - 1
    return _ENC.encode(
        {
            "order_id": f"probe-{time.perf_counter_ns()}",
            "account_id": account,
            "symbol": symbol(j),
            "side": "BUY",
            "quantity": 1.0,
            "price": mark_price(j),
            "dry_run": True,
        }
    )


async def wait_answering(nc: Client, timeout: float, positions: int = 1) -> None:  # noqa: ASYNC109
    """Wait until some responder answers a check (any answer).

    Raises:
        BenchError: no answer within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await nc.request(CHECK_SUBJECT, probe_body("PROBE", positions), timeout=0.5)
            return
        except NO_REPLY:
            await asyncio.sleep(0.02)
    raise BenchError(f"no responder answered within {timeout} s")


async def wait_approved(nc: Client, accounts: int, positions: int, timeout: float) -> None:  # noqa: ASYNC109
    """Wait until a ``dry_run`` check on the last loaded account is approved.

    Raises:
        BenchError: not approved within ``timeout`` seconds (the last reply is in the message).
    """
    last: object = "no reply"
    deadline = time.monotonic() + timeout
    body = probe_body(account_id(accounts - 1), positions)
    while time.monotonic() < deadline:
        try:
            msg = await nc.request(CHECK_SUBJECT, body, timeout=0.5)
            last = msgspec.json.decode(msg.data)
            if isinstance(last, dict) and last.get("approved") is True:
                return
        except NO_REPLY as exc:
            last = repr(exc)
        await asyncio.sleep(0.01)
    raise BenchError(f"the worker did not approve the loaded book; last reply {last}")
