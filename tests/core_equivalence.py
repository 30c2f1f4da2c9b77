"""Seeded random books, policies and orders through the decision core; one line per outcome.

Run by ``tests/unit/test_core.py`` twice, with ``RISK_DECISION_CORE=compiled`` and ``=pure``
(the two cores cannot share a process): the outputs must be identical, byte for byte.

    python tests/core_equivalence.py SEED CASES

The first line names the core that ran (``core compiled`` / ``core pure``). Each case builds
an engine with a random configuration (margin rates, mark age, reservation lifetime, a short VaR
window), random policies of every metric, operator, scope and type (strategy- and
symbol-scoped, VaR among them; an invalid one is reported, not loaded), 1-3 accounts with
balances, positions (of the account and of strategies) and marks (some symbols without one,
some stale, a sampled history for VaR), some trading states, then 25 random orders (edge
quantities and prices, market and limit, reduce-only, dry-run or reserving, unknown accounts
and symbols, duplicate ids), with fills, ticks and releases between them, and finally the
monitor's pass and each account's assessment. Every decision is printed msgspec-encoded in
full (metrics, violations, warnings, utilization, reservation); an exception by its type.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable

import msgspec

from risk_worker import _core
from risk_worker.domain.book_events import Fill, PnlSnapshot, PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.notional_summary import NotionalSummary
from risk_worker.domain.order import DECISION_FIELDS, Decision, Order
from risk_worker.domain.policies import Policy, PolicyError, validate_policy
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.risk_metrics import METRICS_FIELDS, AccountMetrics
from risk_worker.domain.state_keys import StateValue
from risk_worker.domain.strategy_values import STRATEGY_METRICS_FIELDS, StrategyMetrics
from risk_worker.domain.types import (
    Metric,
    Operator,
    OrderType,
    PolicyType,
    Scope,
    Side,
    TradingState,
)
from risk_worker.domain.var_result import VarConfig

SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA")
STRATEGIES = ("alpha", "beta")
T0 = 1_700_000_000_000
"""The first case's clock (ms since epoch)."""
INTERVAL_MS = 1_000
"""The VaR sample interval of every case (ms)."""
_RESERVATION_FIELDS = (
    "order_id",
    "symbol",
    "signed_qty",
    "increasing_qty",
    "price",
    "margin_rate",
    "expires_ms",
    "strategy_id",
    "quantity",
    "limit_price",
    "order_type",
    "risk_level",
)


def _enc_hook(obj: object) -> object:
    """A decision, reservation, account or strategy metrics, or a notional summary (plain
    classes, compiled in one core) as its fields."""
    if isinstance(obj, Decision):
        names = DECISION_FIELDS
    elif isinstance(obj, AccountMetrics):
        names = METRICS_FIELDS
    elif isinstance(obj, StrategyMetrics):
        names = STRATEGY_METRICS_FIELDS
    elif isinstance(obj, NotionalSummary):
        names = ("largest", "largest_symbol", "second", "symbol", "at_symbol")
    else:
        names = _RESERVATION_FIELDS
    return {name: getattr(obj, name) for name in names}


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)


def _edge(rng: random.Random, usual: Callable[[], float], edges: tuple[float, ...]) -> float:
    """``usual()`` mostly, one of ``edges`` one time in five."""
    return rng.choice(edges) if rng.random() < 0.2 else usual()


def _threshold(rng: random.Random, metric: Metric) -> float:
    if metric in {Metric.DAILY_PNL}:
        return rng.choice((-50_000.0, -1_000.0, 0.0, 500.0))
    if metric in {Metric.OPEN_POSITIONS, Metric.OPEN_ORDERS, Metric.ORDER_RATE}:
        return float(rng.randint(0, 6))
    if metric in {Metric.GROSS_EXPOSURE, Metric.NET_EXPOSURE, Metric.POSITION_NOTIONAL}:
        return _edge(rng, lambda: rng.uniform(1e3, 5e6), (0.0, 1e-9, 1e12))
    if metric in {Metric.ORDER_NOTIONAL, Metric.ORDER_QUANTITY}:
        return _edge(rng, lambda: rng.uniform(1.0, 1e6), (0.0, 1e-9, 1e12))
    if metric in {Metric.VAR_95, Metric.VAR_99, Metric.ES_97_5}:
        return rng.uniform(10.0, 1e5)
    return _edge(rng, lambda: rng.uniform(0.01, 20.0), (0.0, 1e-9, 1.0, 1e9))


def random_policies(rng: random.Random, case: int) -> list[Policy]:
    """Up to 16 random policies over every metric, operator, scope and type."""
    out = []
    for i in range(rng.randint(0, 16)):
        metric = rng.choice(list(Metric))
        scope = rng.choice((Scope.ACCOUNT, Scope.ACCOUNT, Scope.SYMBOL, Scope.STRATEGY))
        scope_id: str | None = None
        if scope is Scope.SYMBOL and rng.random() < 0.5:
            scope_id = rng.choice(SYMBOLS)
        elif scope is Scope.STRATEGY and rng.random() < 0.7:
            scope_id = rng.choice(STRATEGIES)
        elif scope is Scope.ACCOUNT and rng.random() < 0.2:
            scope_id = f"A{rng.randint(0, 2)}"
        out.append(
            Policy(
                f"p{case}-{i}",
                f"policy {i} {metric} {scope}",
                rng.choice(list(PolicyType)),
                metric,
                rng.choice(list(Operator)),
                _threshold(rng, metric),
                scope,
                scope_id,
                rng.random() < 0.9,
                rng.randint(1, 200),
            )
        )
    return out


def random_engine(rng: random.Random) -> RiskEngine:
    """An engine with a random configuration and a short VaR window."""
    rates = {s: rng.choice((0.02, 0.05, 0.2, 1.0)) for s in SYMBOLS if rng.random() < 0.4}
    config = RiskConfig(
        default_margin_rate=rng.choice((0.01, 0.1, 0.5)),
        margin_rates=rates,
        mark_max_age_ms=rng.choice((5_000, 30_000, 600_000)),
        pending_ttl_ms=rng.choice((2_000, 60_000)),
        drawdown_window_ms=rng.choice((10_000, 300_000)),
        var=VarConfig(INTERVAL_MS, rng.randint(20, 40), rng.randint(5, 15), 86_400.0),
    )
    return RiskEngine(
        config,
        breaker_threshold=rng.randint(1, 5),
        tick_max_jump=rng.choice((0.05, 0.25)),
        auto_trip_state=rng.choice((TradingState.REDUCING, TradingState.HALTED)),
    )


def load_book(rng: random.Random, engine: RiskEngine, now: int) -> tuple[list[str], int]:
    """Marks with a sampled history, accounts with balances and positions; returns the account
    ids and the clock after the history."""
    prices = {s: rng.choice((0.5, 20.0, 1_500.0, 60_000.0)) for s in SYMBOLS}
    marked = [s for s in SYMBOLS if rng.random() < 0.85]
    for _ in range(engine.config.var.window + 3):
        now += INTERVAL_MS
        for symbol in marked:
            prices[symbol] *= math.exp(rng.gauss(0.0, 0.02))
            engine.set_mark(symbol, prices[symbol], now, now)
        engine.sample_marks(now)
    accounts = [f"A{i}" for i in range(rng.randint(1, 3))]
    for account in accounts:
        balance = _edge(rng, lambda: rng.uniform(1e3, 1e7), (0.0, -5_000.0, 1e-6, 1e12))
        engine.apply_pnl(PnlSnapshot(account, balance, None, rng.uniform(-1e3, 1e3), now))
        for symbol in rng.sample(SYMBOLS, rng.randint(0, 4)):
            quantity = _edge(rng, lambda: rng.uniform(-50.0, 50.0), (0.0, 1e-9, -1e6))
            entry = prices[symbol] * rng.uniform(0.8, 1.2)
            strategy = rng.choice((None, None, *STRATEGIES))
            engine.apply_position(PositionSnapshot(account, symbol, quantity, entry, now, None))
            if strategy is not None:
                engine.apply_position(
                    PositionSnapshot(account, symbol, quantity / 2, entry, now, strategy)
                )
    for _ in range(rng.choice((0, 0, 0, 1, 2))):
        key = rng.choice(
            (
                "trading_state.global" if rng.random() < 0.3 else "trading_state.global.x",
                f"trading_state.account.{rng.choice(accounts)}",
                f"trading_state.symbol.{rng.choice(SYMBOLS)}",
                f"trading_state.strategy.{rng.choice(STRATEGIES)}",
            )
        )
        state = rng.choice((TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED))
        engine.states.apply(key, StateValue(state, "test", "op", now), rng.randint(1, 9))
    return accounts, now


def random_order(
    rng: random.Random, case: int, n: int, accounts: list[str], used: list[str]
) -> Order:
    """A random order; sometimes one repeating an earlier id."""
    order_type = rng.choice((OrderType.LIMIT, OrderType.LIMIT, OrderType.MARKET))
    price: float | None = None
    if order_type is OrderType.LIMIT:
        price = _edge(rng, lambda: rng.uniform(0.1, 80_000.0), (1e-9, 1e12, 0.5))
    quantity = _edge(rng, lambda: rng.uniform(0.001, 30.0), (1e-12, 1e9, 1.0))
    order_id = rng.choice(used) if used and rng.random() < 0.1 else f"o{case}-{n}"
    return Order(
        order_id,
        rng.choice((*accounts, "NOBODY")) if rng.random() < 0.1 else rng.choice(accounts),
        rng.choice(SYMBOLS),
        rng.choice((Side.BUY, Side.SELL)),
        quantity,
        price,
        order_type,
        rng.choice((None, None, *STRATEGIES)),
        rng.random() < 0.15,
        rng.random() < 0.3,
        0,
    )


def run_case(rng: random.Random, case: int, out: list[bytes], detail: bool = True) -> None:
    """One engine's book and orders; appends one line per outcome to ``out`` (``detail``:
    the checks' ``detail``, see :func:`~risk_worker.domain.decision.check_order`)."""
    engine = random_engine(rng)
    valid = []
    for policy in random_policies(rng, case):
        try:
            valid.append(validate_policy(policy))
        except PolicyError as exc:
            out.append(f"{case} policy refused: {exc}".encode())
    try:
        engine.load_policies(valid)
    except PolicyError as exc:
        out.append(f"{case} policies refused: {exc}".encode())
    now = T0 + case * 10_000_000
    accounts, now = load_book(rng, engine, now)
    used: list[str] = []
    for n in range(25):
        now += rng.choice((1, 50, 1_000, 1_000, 1_000, 70_000))
        order = random_order(rng, case, n, accounts, used)
        used.append(order.order_id)
        try:
            decision = engine.check(order, now, rng.random() < 0.95, detail)
            out.append(f"{case} {n} ".encode() + _ENCODER.encode(decision))
        except Exception as exc:
            out.append(f"{case} {n} raised {type(exc).__name__}".encode())
            continue
        if decision.reservation is not None and rng.random() < 0.4:
            fill = Fill(
                f"f{case}-{n}",
                order.order_id,
                order.account_id,
                order.symbol,
                order.side,
                order.quantity * rng.choice((0.5, 1.0)),
                order.price or 100.0,
                rng.uniform(0.0, 5.0),
                now,
                order.strategy_id,
            )
            out.append(f"{case} {n} fill {engine.apply_fill(fill)}".encode())
        if rng.random() < 0.2:
            symbol = rng.choice(SYMBOLS)
            mark = engine.book.marks.get(symbol)
            price = (mark.price if mark else 100.0) * rng.choice((0.5, 0.99, 1.01, 3.0))
            out.append(f"{case} {n} tick {engine.set_mark(symbol, price, now, now)}".encode())
    for account in accounts:
        out.append(
            f"{case} assess {account} ".encode() + _ENCODER.encode(engine.assess(account, now))
        )
    reports = engine.monitor(now)
    out.append(f"{case} monitor ".encode() + _ENCODER.encode(reports))


def main(argv: list[str]) -> int:
    """Prints the core, then every case's outcomes; 0."""
    seed, cases = int(argv[0]), int(argv[1])
    rng = random.Random(seed)
    out = [f"core {_core.STATUS.active}".encode()]
    for case in range(cases):
        run_case(rng, case, out)
    sys.stdout.buffer.write(b"\n".join(out) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
