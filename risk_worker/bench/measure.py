"""Round trips from the bench process: sequential and at K requests in flight.

Every worker reply is decoded and must name the order that was sent and carry the decision
the bench expects of it (approved, or denied for the expected policy), so the figures are those
of correct decisions; with ``--var`` every approved reply must also carry its post-trade 99 %
VaR (the VaR was computed). The floor's replies are counted, not checked.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

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


class _Metrics(msgspec.Struct):
    var_99: float | None = None


class _VarReply(_Reply):
    post_trade_metrics: _Metrics | None = None


_REPLY = msgspec.json.Decoder(_Reply)
_VAR_REPLY = msgspec.json.Decoder(_VarReply)


class Plan(msgspec.Struct, frozen=True):
    """What one phase sends: ``requests`` of ``bodies`` (cycled), or for ``duration`` s.

    ``expected[k]`` is None when body ``k`` must be approved, else the name of the policy whose
    violation must deny it (``order_too_large``: an order-size control); empty means every body
    must be approved. ``var``: an approved reply must carry a post-trade ``var_99``.
    """

    bodies: Sequence[bytes]
    order_ids: Sequence[str]
    requests: int
    duration: float | None = None
    verify: bool = True
    expected: Sequence[str | None] = ()
    var: bool = False


def check_reply(plan: Plan, index: int, data: bytes) -> None:
    """Verify the reply to request ``index`` of ``plan`` (nothing when it does not verify).

    Raises:
        BenchError: it names another order, or is not the decision the plan expects.
    """
    if not plan.verify:
        return
    reply = _VAR_REPLY.decode(data) if plan.var else _REPLY.decode(data)
    k = index % len(plan.order_ids)
    order_id = plan.order_ids[k]
    if reply.order_id != order_id:
        raise BenchError(f"reply to {order_id} names order {reply.order_id}")
    policy = plan.expected[k] if plan.expected else None
    if policy is None:
        if reply.approved is not True:
            raise BenchError(f"order {order_id} not approved: {reply.reason}")
        if isinstance(reply, _VarReply) and (
            reply.post_trade_metrics is None or reply.post_trade_metrics.var_99 is None
        ):
            raise BenchError(f"order {order_id} approved without a post-trade VaR")
        return
    if (
        reply.approved is not False
        or reply.rejection_reason != "order_too_large"
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
        check_reply(plan, k, msg.data)


async def run_phase(nc: Client, plan: Plan, inflight: int, prefix: str) -> dict[str, float]:
    """Send the plan's requests with ``inflight`` outstanding at a time (1: sequential).

    Args:
        nc: connection to the server.
        plan: bodies, their order ids, count or duration, whether to verify replies.
        inflight: concurrent requesters.
        prefix: key prefix of the returned figures.

    Returns:
        p50/p99 (µs) and requests per second, see :func:`summarize`, plus
        ``<prefix>_requests`` (answered) and ``<prefix>_verified`` (replies checked).

    Raises:
        BenchError: a reply was not approved or named another order (the message names the
            phase and how many replies came before).
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
            check_reply(plan, k, msg.data)

    try:
        await asyncio.gather(*(requester() for _ in range(inflight)))
    except BenchError as exc:
        what = "sequential" if inflight == 1 else f"{inflight} in flight"
        raise BenchError(f"{what} ({prefix}, {len(samples)} answered): {exc}") from None
    figures = summarize(samples, clock() - start, prefix)
    figures[f"{prefix}_requests"] = float(len(samples))
    figures[f"{prefix}_verified"] = float(len(samples) if plan.verify else 0)
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used (``/proc/<pid>/stat``), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def background_cpu(pids: Mapping[str, Sequence[int]], seconds: float) -> dict[str, float]:
    """``bg_cpu_<name>_cores``: CPU seconds per second each process group uses over a window
    of ``seconds`` with no checks sent (what ticks and the monitor cost, whatever the load)."""
    before = {name: sum(map(cpu_seconds, group)) for name, group in pids.items()}
    started = time.monotonic()
    await asyncio.sleep(seconds)  # the measured window, not a wait for a condition
    elapsed = time.monotonic() - started
    return {
        f"bg_cpu_{name}_cores": (sum(map(cpu_seconds, group)) - before[name]) / elapsed
        for name, group in pids.items()
    }


Counter = Callable[[], Awaitable[float]]
"""Reads a count from the responders (e.g. checks forwarded, summed over the instances)."""


async def timed_phase(
    nc: Client,
    plan: Plan,
    inflight: int,
    prefix: str,
    pids: Mapping[str, Sequence[int]],
    forwarded: Counter | None = None,
) -> dict[str, float]:
    """:func:`run_phase`, plus ``<prefix>_cpu_<name>_us``: CPU µs per request of each process
    group, and with ``forwarded`` ``<prefix>_forwarded``: the fraction of the phase's checks
    that the receiving instance forwarded to the account's owner.

    Args:
        pids: name → pids of the processes to account, summed (e.g. client, server, the
            responders: one floor or every worker instance).
        forwarded: the instances' forwarded-check count, read before and after the phase
            (outside the CPU window: reading it costs the workers CPU).
    """
    fwd_before = await forwarded() if forwarded is not None else 0.0
    before = {name: sum(map(cpu_seconds, group)) for name, group in pids.items()}
    figures = await run_phase(nc, plan, inflight, prefix)
    after = {name: sum(map(cpu_seconds, group)) for name, group in pids.items()}
    n = max(figures[f"{prefix}_requests"], 1.0)
    for name in pids:
        figures[f"{prefix}_cpu_{name}_us"] = (after[name] - before[name]) / n * 1e6
    if forwarded is not None:
        figures[f"{prefix}_forwarded"] = (await forwarded() - fwd_before) / n
    return figures


async def measure_all(
    nc: Client,
    plan: Plan,
    inflight_levels: Sequence[int],
    pids: Mapping[str, Sequence[int]],
    forwarded: Counter | None = None,
) -> dict[str, float]:
    """Warm up, then a sequential phase (``seq_*``) and one per level (``c<K>_*``).

    Args:
        nc: connection to the server.
        plan: what each phase sends.
        inflight_levels: concurrency of the phases after the sequential one.
        pids: process groups whose CPU time per request is reported (see :func:`timed_phase`).
        forwarded: the forwarded-check count (see :func:`timed_phase`), None for the floor.
    """
    await warm_up(nc, plan)
    figures: dict[str, float] = {}
    for prefix, level in (("seq", 1), *((f"c{k}", k) for k in inflight_levels)):
        figures |= await timed_phase(nc, plan, level, prefix, pids, forwarded)
    return figures
