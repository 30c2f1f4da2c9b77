"""VaR samples in Redis (issue 13): `risk-worker var seed` writes recorded bars where the
workers keep them and a running worker reloads them; a restarted worker starts with them."""

from __future__ import annotations

from pathlib import Path

from risk_worker.adapters.var_store import load_samples
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.devstack.redis_server import RedisServer
from risk_worker.domain.policies import Policy
from risk_worker.domain.types import Metric, Operator, PolicyType
from tests.harness import Harness
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory
from tests.procs import risk_env, run_cli
from tests.redis_fixtures import redis_client

SYMBOL = "BTCUSDT"
SEEDED_BEFORE_MS = 1_504_483_200_000
"""2017-09-04T00:00:00Z: the seeded bars are on 2017-09-03; a sample after it is the worker's own
(it samples the live mark at each one-minute boundary, so one may land while the test runs)."""
VAR_CAP = Policy(
    "id-var", "Max VaR 99", PolicyType.HARD, Metric.VAR_99_FRACTION, Operator.LTE, 0.01
)


def write_bars(path: Path, minutes: int) -> Path:
    """One-minute BTCUSD bars (the Coinbase layout), a zig-zag around 40,000."""
    rows = ["ts_utc,exchange,symbol,open,high,low,close,volume"]
    for m in range(minutes):
        close = 40_000.0 * (1.0 + 0.002 * ((m % 5) - 2))
        stamp = f"2017-09-03T{m // 60:02d}:{m % 60:02d}:00Z"
        rows.append(f"{stamp},coinbase,BTCUSD,{close},{close},{close},{close},1.0")
    path.write_text("\n".join(rows) + "\n")
    return path


async def describe(h: Harness) -> None:
    await h.pnl("acct-v", 1_000_000.0)
    await h.tick(SYMBOL, 40_000.0)
    await h.settle()


async def test_seed_when_workers_run_then_reloaded_and_kept_across_a_restart(
    nats_server: NatsServer,
    own_redis_server: RedisServer,
    harness_factory: HarnessFactory,
    tmp_path: Path,
) -> None:
    first = await harness_factory(policies=[VAR_CAP], redis_url=own_redis_server.url)
    await describe(first)
    before = await first.check("acct-v", SYMBOL, "BUY", 0.1, 40_000.0, dry_run=True)
    assert before["rejection_reason"] == "insufficient_history", before
    assert SYMBOL in before["reason"]

    bars = write_bars(tmp_path / "bars.csv", 200)
    env = risk_env(nats_server.url, first.settings.kv_bucket, RISK_REDIS_URL=own_redis_server.url)
    result = await run_cli(env, "var", "seed", str(bars), "--symbol-map", "BTCUSD=BTCUSDT")

    assert result.returncode == 0, result.stderr
    assert "BTCUSDT: 200 bars, 200 samples kept" in result.stdout
    returns = first.worker.engine.book.returns
    await wait_for(lambda: returns.return_count(SYMBOL) >= 199, message="samples not reloaded")
    after = await first.check("acct-v", SYMBOL, "BUY", 0.1, 40_000.0, dry_run=True, detail="full")
    assert after["approved"], after
    metrics = after["post_trade_metrics"]
    assert metrics["var_99"] > 0.0 and metrics["var_99_fraction"] < 0.01
    big = await first.check("acct-v", SYMBOL, "BUY", 5.0, 40_000.0, dry_run=True)
    assert big["rejection_reason"] == "policy_violation", big
    assert big["reason"].startswith("Max VaR 99: var_99_fraction")
    assert big["violations"][0]["metric"] == "var_99_fraction"

    async with redis_client(own_redis_server.url) as client:
        stored = await load_samples(client)
    seeded = [(at, price) for at, price in stored[SYMBOL] if at < SEEDED_BEFORE_MS]
    assert len(seeded) == 200
    # a minute boundary passed while the test ran: the worker sampled the live mark too
    assert all(price == 40_000.0 for at, price in stored[SYMBOL] if at >= SEEDED_BEFORE_MS)
    assert len(stored[SYMBOL]) <= 201

    second = await harness_factory(policies=[VAR_CAP], redis_url=own_redis_server.url)
    assert second.worker.engine.book.returns.return_count(SYMBOL) >= 199  # restored at start
    await describe(second)
    again = await second.check("acct-v", SYMBOL, "BUY", 0.1, 40_000.0, dry_run=True)
    assert again["approved"], again


async def test_worker_when_ticks_flow_then_marks_sampled_every_interval(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(policies=[VAR_CAP], var_sample_interval=1, var_min_samples=2)
    returns = h.worker.engine.book.returns

    async def ticked() -> bool:
        await h.tick("ETHUSDT", 2_000.0)
        return returns.return_count("ETHUSDT") >= 3

    await wait_for(ticked, 10.0, interval=0.2, message="no returns sampled from the ticks")
    boundaries = [b for b, _ in returns.samples("ETHUSDT")]
    assert all(b % 1_000 == 0 for b in boundaries)
