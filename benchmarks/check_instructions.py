"""The decision's cost in instructions, for comparisons a noisy machine cannot blur.

Builds a book (100 accounts × 20 positions, 13 policies by default), parses 4,000 dry-run
requests, then calls ``RiskEngine.check`` on the first N with GC off (each must be approved).
Run it under callgrind for two values of N; the difference of the totals divided by the
difference of N is the instructions per check (setup cancels out):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/check_instructions.py 1000     # then 3000

To compare two trees, run each with ``PYTHONPATH=<tree>`` from that tree. ``--live`` makes
the orders non-dry-run, 1 ms apart: each approval reserves, and each is counted by the
throttle (100 accounts: about 10 checks per second each, under the built-in limit).
``--var`` also loads a hard ``var_99_fraction`` policy (never violated here) and seeds every
symbol with ``RISK_VAR_WINDOW`` (1,440) one-minute samples, so each check computes the
historical VaR of its post-trade positions (issue 13). ``--strategies`` attributes each
account's positions to four strategies (strategy snapshots: 5 per strategy at 20 positions),
loads three strategy-scoped policies (``drawdown_max``, ``gross_exposure``, ``daily_pnl``; never
violated here) and has every order name one of the four, so each check computes its strategy's
metrics before and after the order (issue 13, per-strategy books). ``--moving-marks`` sets
every symbol's mark to its price × (1 + δ), δ in [−0.0001, 0.0001] and different each time,
before each check, as ticks
moving all marks between two checks of an account would (the incremental VaR then sees every
held exposure changed slightly; without it the marks never move). ``--compact`` checks as for a
compact reply (``detail`` False: the post-trade policies' utilization is not recorded), the
worker's default; without it every policy's utilization is kept, as for ``detail`` ``full``.
``--answer`` runs the whole answer instead, as the worker does: ``CheckHandler.answer`` on the
request's bytes (decode, decide, encode; the replies compact unless a request asks ``full``).
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import time

from risk_worker.adapters.check_handler import CheckHandler
from risk_worker.bench.core import (
    MAX_REQUEST_BYTES,
    WORKER_ID,
    NullSink,
    bench_policies,
    build_engine,
    mark_price,
    request_bodies,
    symbol,
)
from risk_worker.domain.book_events import PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.policies import Policy
from risk_worker.domain.types import Metric, Operator, PolicyType, Scope
from risk_worker.wire import check_request


def main() -> None:
    """Check the first N orders (argument) against the benchmark book."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="how many checks (at most 4,000)")
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--live", action="store_true", help="non-dry-run orders, 1 ms apart")
    parser.add_argument("--var", action="store_true", help="a VaR policy and seeded history")
    parser.add_argument("--strategies", action="store_true", help="strategy books and policies")
    parser.add_argument("--moving-marks", action="store_true", help="every mark ±0.01 %% a check")
    parser.add_argument(
        "--compact", action="store_true", help="detail=False: a compact reply's check"
    )
    parser.add_argument(
        "--answer", action="store_true", help="CheckHandler.answer: decode, decide, encode"
    )
    args = parser.parse_args()
    now = time.time_ns() // 1_000_000  # the engine's clock throughout: marks never go stale
    engine = build_engine(accounts=args.accounts, positions=args.positions, now_ms=now)
    if args.var:
        seed_var(engine, args.positions, now)
    bodies = request_bodies(4000, args.accounts, args.positions)
    if args.strategies:
        seed_strategies(engine, args.accounts, args.positions)
        bodies = [
            b.replace(b'"strategy_id":"momentum"', b'"strategy_id":"strat-%d"' % (k % STRATEGIES))
            for k, b in enumerate(bodies)
        ]
    if args.live:
        bodies = [b.replace(b'"dry_run":true', b'"dry_run":false') for b in bodies]
    orders = [check_request.parse_check(b, MAX_REQUEST_BYTES) for b in bodies]
    if args.answer:
        answer_all(engine, bodies[: args.n])
        return
    gc.disable()
    step = 1 if args.live else 0
    symbols = [symbol(j) for j in range(args.positions)] if args.moving_marks else []
    for k, order in enumerate(orders[: args.n]):
        for j, sym in enumerate(symbols):
            engine.set_mark(sym, mark_price(j) * (1.0 + drift(k, j)), now, now)
        decision = engine.check(order, now + k * step, True, not args.compact)
        if not decision.approved:
            raise SystemExit(f"order {order.order_id} denied: {decision.message}")


def answer_all(engine: RiskEngine, bodies: list[bytes]) -> None:
    """Answer each request as the worker does (compact replies unless a body asks ``full``)."""
    handler = CheckHandler(engine, lambda: True, WORKER_ID, MAX_REQUEST_BYTES, NullSink())
    gc.disable()
    for body in bodies:
        answer = handler.answer(body)
        if answer.decision is None or not answer.decision.approved:
            raise SystemExit(f"a request was not approved: {answer.payload[:200]!r}")


def drift(k: int, j: int) -> float:
    """A relative mark move in [−0.0001, 0.0001] that differs between checks and symbols."""
    return ((k * 7_919 + j * 104_729) % 201 - 100) * 1e-6


def seed_var(engine: RiskEngine, positions: int, now: int) -> None:
    """Load a VaR policy beside the bench's and give every symbol a full sample window."""
    cap = Policy(
        "bench-var", "Max VaR 99", PolicyType.HARD, Metric.VAR_99_FRACTION, Operator.LTE, 100.0
    )
    engine.load_policies([*bench_policies(), cap])
    history = engine.book.returns
    step = history.interval_ms
    last = now // step
    rng = random.Random(13)
    for j in range(positions):
        price = mark_price(j)
        for k in range(last - history.window + 1, last + 1):
            history.record(symbol(j), k * step, price)
            price *= math.exp(rng.gauss(0.0, 0.001))
    history.refresh()


STRATEGIES = 4
"""Strategies per account with ``--strategies``."""


def seed_strategies(engine: RiskEngine, accounts: int, positions: int) -> None:
    """Attribute each account's positions to :data:`STRATEGIES` strategies and load three
    strategy-scoped policies beside the bench's (never violated here)."""
    now = time.time_ns() // 1_000_000
    for account_id, acct in list(engine.book.accounts.items())[:accounts]:
        for j, pos in enumerate(list(acct.positions.values())[:positions]):
            engine.apply_position(
                PositionSnapshot(
                    account_id,
                    pos.symbol,
                    pos.quantity,
                    pos.entry_price,
                    now,
                    f"strat-{j % STRATEGIES}",
                )
            )
    limits = [
        (Metric.DRAWDOWN_MAX, Operator.LTE, 0.9),
        (Metric.GROSS_EXPOSURE, Operator.LTE, 1e15),
        (Metric.DAILY_PNL, Operator.GTE, -1e15),
    ]
    engine.load_policies(
        [
            *(engine.policies.policies if engine.policies else bench_policies()),
            *(
                Policy(f"strat-{m}", f"Strategy {m}", PolicyType.HARD, m, op, t, Scope.STRATEGY)
                for m, op, t in limits
            ),
        ]
    )


if __name__ == "__main__":
    main()
