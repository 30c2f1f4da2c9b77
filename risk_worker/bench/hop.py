"""The forwarding hop's cost: sequential checks, each classified as forwarded or answered where
it landed.

The queue group picks the receiving instance, so the bench cannot choose which checks are
forwarded — and a reply names only the deciding instance (the owner), not the receiver. But
each receiver counts what it forwards (``risk_checks_forwarded_total``), and it counts before
it forwards, so before the reply reaches the client. So the phase sends one check at a time
through ``risk.check.order`` and reads the instances' counters between checks, outside the
timed request: a check during which the sum rose was forwarded (one extra hop: receiver →
nats-server → owner), the others were answered by the instance that received them. Both kinds
come from the same phase, the same bodies and accounts, interleaved at random by the queue
group — a randomized comparison, so the difference of their latencies is the hop's cost
(the extra message through the server, the receiver's parse of the request to find the
account, and the owner's wake-up), not an artefact of when or on what each was measured.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from nats.aio.client import Client

from risk_worker.bench.fleet import forwarded_total
from risk_worker.bench.load import CHECK_SUBJECT, BenchError
from risk_worker.bench.measure import REQUEST_TIMEOUT_S, Plan, check_reply

HOP_REQUESTS = 600
"""Checks of the hop phase (with N = 2, about half forwarded); fewer with ``--requests``."""


def _stats(samples_ns: list[int], prefix: str) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)
    if n == 0:
        return {f"{prefix}_n": 0.0}
    return {
        f"{prefix}_n": float(n),
        f"{prefix}_p50_us": ordered[n // 2] / 1000.0,
        f"{prefix}_p90_us": ordered[min(n - 1, int(0.9 * n))] / 1000.0,
        f"{prefix}_mean_us": statistics.fmean(ordered) / 1000.0,
    }


async def hop_phase(
    nc: Client, plan: Plan, ports: Sequence[int], requests: int
) -> dict[str, float]:
    """Send ``requests`` checks of ``plan`` one at a time, classify each (see the module).

    Args:
        nc: connection to the server.
        plan: the bodies (cycled) and what each reply must carry (every reply verified).
        ports: the instances' HTTP ports (their ``/metrics``).
        requests: how many checks.

    Returns:
        ``hop_forwarded_*`` and ``hop_local_*``: ``_n``, ``_p50_us``, ``_p90_us``,
        ``_mean_us``; ``hop_cost_p50_us`` and ``hop_cost_mean_us`` (forwarded − local; absent
        when either kind got no check) and ``hop_forwarded`` (the fraction forwarded).

    Raises:
        BenchError: a reply was wrong, or a check was counted as forwarded more than once.
    """
    forwarded: list[int] = []
    local: list[int] = []
    clock = time.perf_counter_ns
    count = len(plan.bodies)
    before = await forwarded_total(ports)
    for k in range(requests):
        t0 = clock()
        msg = await nc.request(CHECK_SUBJECT, plan.bodies[k % count], timeout=REQUEST_TIMEOUT_S)
        elapsed = clock() - t0
        check_reply(plan, k, msg.data)
        after = await forwarded_total(ports)
        if after - before > 1:
            raise BenchError(f"one check counted as forwarded {after - before:.0f} times")
        (forwarded if after > before else local).append(elapsed)
        before = after
    figures = _stats(forwarded, "hop_forwarded") | _stats(local, "hop_local")
    figures["hop_forwarded"] = len(forwarded) / max(requests, 1)
    if forwarded and local:
        for q in ("p50", "mean"):
            figures[f"hop_cost_{q}_us"] = (
                figures[f"hop_forwarded_{q}_us"] - figures[f"hop_local_{q}_us"]
            )
    return figures
