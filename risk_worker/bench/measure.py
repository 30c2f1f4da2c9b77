"""Round trips from the bench process: sequential and at K requests in flight.

Every worker reply is decoded and must name the order that was sent and carry the decision
the bench expects of it (approved, or denied for the expected policy), so the figures are those
of correct decisions; the floor's replies are counted, not checked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec
from nats.aio.client import Client

from risk_worker.bench.load import CHECK_SUBJECT, BenchError

REQUEST_TIMEOUT_S = 5.0
WARMUP_REQUESTS = 200


class _Violation(msgspec.Struct):
    policy_name: str = ""


class _Reply(msgspec.Struct):
    order_id: str | None = None
    approved: bool | None = None
    rejection_reason: str | None = None
    reason: str | None = None
    violations: list[_Violation] = []


_REPLY = msgspec.json.Decoder(_Reply)


class Plan(msgspec.Struct, frozen=True):
    """What one phase sends: ``requests`` of ``bodies`` (cycled), or for ``duration`` s.

    ``expected[k]`` is None when body ``k`` must be approved, else the name of the policy whose
    violation must deny it (``policy_violation``); empty means every body must be approved.
    """

    bodies: Sequence[bytes]
    order_ids: Sequence[str]
    requests: int
    duration: float | None = None
    verify: bool = True
    expected: Sequence[str | None] = ()


def _check(plan: Plan, index: int, data: bytes) -> None:
    if not plan.verify:
        return
    reply = _REPLY.decode(data)
    k = index % len(plan.order_ids)
    order_id = plan.order_ids[k]
    if reply.order_id != order_id:
        raise BenchError(f"reply to {order_id} names order {reply.order_id}")
    policy = plan.expected[k] if plan.expected else None
    if policy is None:
        if reply.approved is not True:
            raise BenchError(f"order {order_id} not approved: {reply.reason}")
        return
    if (
        reply.approved is not False
        or reply.rejection_reason != "policy_violation"
        or not reply.violations
        or reply.violations[0].policy_name != policy
    ):
        raise BenchError(f"order {order_id} not denied by {policy!r}: {reply.reason}")


def summarize(samples_ns: list[int], elapsed_ns: int, prefix: str) -> dict[str, float]:
    """``<prefix>_p50_us``, ``_p99_us`` and ``_rps`` of one phase."""
    ordered = sorted(samples_ns)
    n = len(ordered)
    return {
        f"{prefix}_p50_us": ordered[min(n - 1, n // 2)] / 1000.0,
        f"{prefix}_p99_us": ordered[min(n - 1, int(0.99 * n))] / 1000.0,
        f"{prefix}_rps": n / (elapsed_ns / 1e9) if elapsed_ns > 0 else 0.0,
    }


async def warm_up(nc: Client, plan: Plan) -> None:
    """Send :data:`WARMUP_REQUESTS` sequential requests (verified, not timed)."""
    for k in range(WARMUP_REQUESTS):
        msg = await nc.request(
            CHECK_SUBJECT, plan.bodies[k % len(plan.bodies)], timeout=REQUEST_TIMEOUT_S
        )
        _check(plan, k, msg.data)


async def run_phase(nc: Client, plan: Plan, inflight: int, prefix: str) -> dict[str, float]:
    """Send the plan's requests with ``inflight`` outstanding at a time (1: sequential).

    Args:
        nc: connection to the server.
        plan: bodies, their order ids, count or duration, whether to verify replies.
        inflight: concurrent requesters.
        prefix: key prefix of the returned figures.

    Returns:
        p50/p99 (µs) and requests per second, see :func:`summarize`, plus
        ``<prefix>_verified`` (replies checked).

    Raises:
        BenchError: a reply was not approved or named another order.
    """
    samples: list[int] = []
    clock = time.perf_counter_ns
    next_index = 0
    start = clock()
    stop_at = None if plan.duration is None else start + int(plan.duration * 1e9)
    bodies = plan.bodies
    count = len(bodies)

    async def requester() -> None:
        nonlocal next_index
        while True:
            k = next_index
            if stop_at is None:
                if k >= plan.requests:
                    return
            elif clock() >= stop_at:
                return
            next_index = k + 1
            t0 = clock()
            msg = await nc.request(CHECK_SUBJECT, bodies[k % count], timeout=REQUEST_TIMEOUT_S)
            samples.append(clock() - t0)
            _check(plan, k, msg.data)

    await asyncio.gather(*(requester() for _ in range(inflight)))
    figures = summarize(samples, clock() - start, prefix)
    figures[f"{prefix}_verified"] = float(len(samples) if plan.verify else 0)
    return figures


async def measure_all(
    nc: Client,
    plan: Plan,
    inflight_levels: Sequence[int],
    before_phase: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, float]:
    """Warm up, then a sequential phase (``seq_*``) and one per level (``c<K>_*``).

    Args:
        nc: connection to the server.
        plan: what each phase sends.
        inflight_levels: concurrency of the phases after the sequential one.
        before_phase: awaited before each phase (e.g. to refresh the marks).
    """
    figures: dict[str, float] = {}
    for prefix, level in (("seq", 1), *((f"c{k}", k) for k in inflight_levels)):
        if before_phase is not None:
            await before_phase()
        if level == 1:
            await warm_up(nc, plan)
        figures |= await run_phase(nc, plan, level, prefix)
    return figures
