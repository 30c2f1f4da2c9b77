"""Load the worker's book through real events on NATS, then wait until it is ready.

Every account gets a ``pnl.update`` (balance) and one ``positions.update`` per symbol; every
symbol gets a ``market.tick.<symbol>`` mark. Figures and names come from
:mod:`risk_worker.bench.core`, so the book matches the in-process microbenchmark's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import nats.errors
from nats.aio.client import Client

from risk_worker.bench.core import (
    BALANCE,
    POSITION_NOTIONAL,
    account_id,
    bench_policies,
    mark_price,
    request_bodies,
    symbol,
    wall_ms,
)
from risk_worker.domain.policies import Policy

CHECK_SUBJECT = "risk.check.order"
NO_REPLY = (nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError)
_ENC = msgspec.json.Encoder()


DENY_EVERY = 50
"""Every 50th request is an order the bench expects to be denied (2 %)."""
DENY_POLICY = "Max Order Notional"
"""The policy that denies it: in the bench's policy file, not among the worker's defaults."""
DENY_NOTIONAL = 2_000_000.0
"""Notional of those orders (quote): twice that policy's limit, within every other policy."""


class BenchError(RuntimeError):
    """The bench could not run, or a check returned a wrong answer."""


def write_policy_file(path: Path, extra: Sequence[Policy] = ()) -> Path:
    """Write the bench's 14 policies (:func:`~risk_worker.bench.core.bench_policies`) and
    ``extra`` ones as TOML.

    The worker reads it through ``RISK_POLICY_FILE``, so it runs the same set as the in-process
    microbenchmark without a database.
    """
    lines: list[str] = []
    for p in [*bench_policies(), *extra]:
        lines += [
            "[[policy]]",
            f"name = {_ENC.encode(p.name).decode()}",
            f'type = "{p.type.value}"',
            f'metric = "{p.metric.value}"',
            f'operator = "{p.operator.value}"',
            f"threshold = {p.threshold!r}",
            f'scope = "{p.scope.value}"',
            *([f'scope_id = "{p.scope_id}"'] if p.scope_id is not None else []),
            f"enabled = {'true' if p.enabled else 'false'}",
            f"priority = {p.priority}",
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def denial_body(k: int, accounts: int, positions: int) -> bytes:
    """A ``dry_run`` limit order of :data:`DENY_NOTIONAL`, which :data:`DENY_POLICY` denies."""
    j = (k * 7) % positions
    price = mark_price(j)
    return _ENC.encode(
        {
            "order_id": f"bench-{k}",
            "account_id": account_id((k * 31) % accounts),
            "symbol": symbol(j),
            "side": "BUY" if k % 2 == 0 else "SELL",
            "quantity": round(DENY_NOTIONAL / price, 4),
            "price": price,
            "order_type": "LIMIT",
            "dry_run": True,
        }
    )


def bench_requests(
    n: int, accounts: int, positions: int, detail: str | None = None
) -> tuple[list[bytes], list[str], list[str | None]]:
    """``n`` check requests, their order ids, and what each must get; ``detail`` as in
    :func:`~risk_worker.bench.core.request_bodies` (``--var`` asks ``full`` to see the VaR).

    Returns:
        (bodies, order ids ``bench-<k>``, expected: None for approved, else the name of the
        policy that must deny it). Typical orders come from
        :func:`~risk_worker.bench.core.request_bodies`; every :data:`DENY_EVERY`-th is
        :func:`denial_body`.
    """
    bodies = request_bodies(n, accounts, positions, detail=detail)
    expected: list[str | None] = [None] * n
    for k in range(DENY_EVERY - 1, n, DENY_EVERY):
        bodies[k] = denial_body(k, accounts, positions)
        expected[k] = DENY_POLICY
    return bodies, [f"bench-{k}" for k in range(n)], expected


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


def probe_body(account: str, positions: int, full: bool = False) -> bytes:
    """A small ``dry_run`` limit order on ``account`` (the last symbol, near its mark);
    ``full``: asking for the full reply (its post-trade metrics)."""
    j = positions - 1
    body: dict[str, object] = {
        "order_id": f"probe-{time.perf_counter_ns()}",
        "account_id": account,
        "symbol": symbol(j),
        "side": "BUY",
        "quantity": 1.0,
        "price": mark_price(j),
        "dry_run": True,
    }
    if full:
        body["detail"] = "full"
    return _ENC.encode(body)


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


def _approved(reply: object, var: bool) -> bool:
    if not isinstance(reply, dict) or reply.get("approved") is not True:
        return False
    metrics = reply.get("post_trade_metrics")
    return not var or (isinstance(metrics, dict) and metrics.get("var_99") is not None)


async def wait_approved(
    nc: Client,
    accounts: int,
    positions: int,
    timeout: float,  # noqa: ASYNC109
    var: bool = False,
    subject: str = CHECK_SUBJECT,
) -> None:
    """Wait until a ``dry_run`` check on the last loaded account is approved (with ``var``:
    and its post-trade metrics carry a 99 % VaR, the worker's history is restored).

    ``subject``: where to ask; ``risk.check.owner.<worker_id>`` makes that instance decide it
    (no forwarding), so its own book is the one tested.

    Raises:
        BenchError: not approved within ``timeout`` seconds (the last reply is in the message).
    """
    last: object = "no reply"
    deadline = time.monotonic() + timeout
    body = probe_body(account_id(accounts - 1), positions, full=var)
    while time.monotonic() < deadline:
        try:
            msg = await nc.request(subject, body, timeout=0.5)
            last = msgspec.json.decode(msg.data)
            if _approved(last, var):
                return
        except NO_REPLY as exc:
            last = repr(exc)
        await asyncio.sleep(0.01)
    what = "approve the loaded book" + (" with a VaR" if var else "")
    raise BenchError(f"the worker did not {what}; last reply {last}")
