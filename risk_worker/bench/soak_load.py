"""The soak's traffic and observers: checks (approved and policy-denied) at a steady rate,
fills, and a ``/ready`` poller per worker.

Accounts, symbols and marks are the bench's (:mod:`risk_worker.bench.core`); a denied order is
:func:`~risk_worker.bench.load.denial_body`'s, broken by exactly one policy (one violation row).
Every check is counted in the :class:`~risk_worker.bench.soak_stats.Timeline` phase current
when it was sent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
from dataclasses import dataclass, field

import msgspec
import nats.errors
from nats.aio.client import Client

from risk_worker.bench.core import ORDER_NOTIONAL, account_id, mark_price, symbol, wall_ms
from risk_worker.bench.load import CHECK_SUBJECT, DENY_EVERY, denial_body
from risk_worker.bench.procs import http_get
from risk_worker.bench.soak_stats import Timeline, UnconfirmedIntervals

_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder()
CHECK_TIMEOUT_S = 1.0
"""A check without a reply within 1 s counts as unanswered."""
POLL_INTERVAL_S = 0.02


def approve_body(k: int, accounts: int, positions: int) -> bytes:
    """A small ``dry_run`` limit order near the mark (``ORDER_NOTIONAL``), id ``soak-a-<k>``."""
    j = (k * 7) % positions
    buy = k % 2 == 0
    price = mark_price(j)
    return _ENC.encode(
        {
            "order_id": f"soak-a-{k}",
            "account_id": account_id((k * 31) % accounts),
            "symbol": symbol(j),
            "side": "BUY" if buy else "SELL",
            "quantity": round(ORDER_NOTIONAL / price, 4),
            "price": round(price * (1.001 if buy else 0.999), 4),
            "order_type": "LIMIT",
            "dry_run": True,
        }
    )


@dataclass
class CheckTally:
    """What the checks got over the whole run.

    ``approvals``: worker id → (sent, received) of each approval (monotonic s).
    ``denied``: order id → violations in the reply, for each policy-denied order that was
    denied (one row each); ``unanswered_deny_ids``: those that got no reply (a row may exist).
    """

    sent: int = 0
    answered: int = 0
    approvals: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    denied: dict[str, int] = field(default_factory=dict)
    unanswered_deny_ids: set[str] = field(default_factory=set)
    deny_order_approved: int = 0
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)


class CheckLoad:
    """``rate`` checks per second over ``lanes`` concurrent request loops until stopped (64: enough
    that checks waiting out a 1 s timeout do not hold the others back); every
    :data:`~risk_worker.bench.load.DENY_EVERY`-th order is one a policy denies."""

    def __init__(
        self, nc: Client, timeline: Timeline, rate: float, accounts: int, positions: int
    ) -> None:
        self._nc, self._timeline = nc, timeline
        self._rate, self._accounts, self._positions = rate, accounts, positions
        self._counter = itertools.count()
        self.tally = CheckTally()

    async def run(self, stop: asyncio.Event, lanes: int = 64) -> None:
        """Send checks until ``stop`` is set (each lane paced at ``rate / lanes`` per second)."""
        await asyncio.gather(*(self._lane(stop, lanes) for _ in range(lanes)))

    async def _lane(self, stop: asyncio.Event, lanes: int) -> None:
        period = lanes / self._rate
        due = time.monotonic()
        while not stop.is_set():
            await self.check_one(next(self._counter))
            due = max(due + period, time.monotonic() - period)
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def check_one(self, k: int) -> None:
        """Send check ``k`` and count what it got."""
        deny = k % DENY_EVERY == DENY_EVERY - 1
        if deny:
            body = denial_body(k, self._accounts, self._positions).replace(
                b'"bench-', b'"soak-d-', 1
            )
        else:
            body = approve_body(k, self._accounts, self._positions)
        t = self.tally
        phase = self._timeline.current
        t.sent += 1
        sent = time.monotonic()
        try:
            msg = await self._nc.request(CHECK_SUBJECT, body, timeout=CHECK_TIMEOUT_S)
            reply = _DEC.decode(msg.data)
        except (nats.errors.Error, TimeoutError, OSError, msgspec.DecodeError) as exc:
            phase.unanswered += 1
            t.reasons[f"no reply ({type(exc).__name__})"] += 1
            if deny:
                t.unanswered_deny_ids.add(f"soak-d-{k}")
            await asyncio.sleep(0.01)  # no responders fails at once: do not spin
            return
        received = time.monotonic()
        t.answered += 1
        phase.latencies_ms.append((received - sent) * 1000.0)
        if not isinstance(reply, dict):
            t.reasons["unreadable reply"] += 1
        elif reply.get("approved") is True:
            phase.approved += 1
            t.approvals[str(reply.get("worker_id"))].append((sent, received))
            t.deny_order_approved += deny
        else:
            phase.denied += 1
            reason = str(reply.get("rejection_reason"))
            t.reasons[("expected " if deny else "") + reason] += 1
            violations = reply.get("violations")
            if deny and isinstance(violations, list) and violations:
                t.denied[f"soak-d-{k}"] = len(violations)


async def publish_fills(
    nc: Client, rate: float, accounts: int, positions: int, stop: asyncio.Event
) -> int:
    """Publish ``fills.confirmed`` at ``rate`` per second until ``stop``: pairs of a BUY then a
    SELL of the same small quantity, so positions stay where they were; how many were sent."""
    sent = 0
    due = time.monotonic()
    while not stop.is_set():
        pair, side = divmod(sent, 2)
        j = (pair * 3) % positions
        price = mark_price(j)
        body = {
            "fill_id": f"soak-f-{sent}",
            "order_id": f"soak-fo-{pair}",
            "account_id": account_id((pair * 17) % accounts),
            "symbol": symbol(j),
            "side": "SELL" if side else "BUY",
            "quantity": round(ORDER_NOTIONAL / price / 10, 4),
            "price": price,
            "timestamp": wall_ms(),
        }
        with contextlib.suppress(nats.errors.Error, OSError):  # lost like any core-NATS message
            await nc.publish("fills.confirmed", _ENC.encode(body))
        sent += 1
        due = max(due + 1.0 / rate, time.monotonic() - 1.0)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
    return sent


async def poll_ready(port: int, tracker: UnconfirmedIntervals, stop: asyncio.Event) -> None:
    """Poll a worker's ``/ready`` every 20 ms into ``tracker`` until ``stop``."""
    while not stop.is_set():
        sent = time.monotonic()
        confirmed: bool | None
        try:
            _, body = await http_get(port, "/ready")  # 200 or 503: the body says which part
            checks = _DEC.decode(body).get("checks", {})
            state = checks.get("trading_state") if isinstance(checks, dict) else None
            confirmed = None if state is None else state == "confirmed"
        except (OSError, TimeoutError, msgspec.DecodeError, AttributeError):
            confirmed = None
        tracker.feed(sent, time.monotonic(), confirmed)
        await asyncio.sleep(POLL_INTERVAL_S)
