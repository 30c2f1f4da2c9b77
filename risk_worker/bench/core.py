"""Microbenchmark of the in-process check path: decode → decide → encode, no NATS.

Builds a realistic book (by default 1,000 accounts × 20 positions, 14 policies, marks for every
symbol) through the engine's own event calls, pre-encodes ``dry_run`` check requests and times
:meth:`~risk_worker.adapters.check_handler.CheckHandler.answer` per call, then each stage on its
own: decoding (``check_request.parse_check``), the decision (``RiskEngine.check``) and encoding
the reply (``reply_msg`` + a msgspec encoder). The garbage collector is disabled during each
timed loop.

Every reply is verified: it must decode, echo its order id and be approved, and an order built
to break a policy must be denied, so the figures are those of correct decisions.
"""

from __future__ import annotations

import gc
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from risk_worker.adapters.check_handler import CheckHandler
from risk_worker.domain.book_events import PnlSnapshot, PositionSnapshot
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Decision, Order
from risk_worker.domain.policies import Policy, default_policies
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.types import DenyReason, Metric, Operator, PolicyType, Scope
from risk_worker.wire import check_request
from risk_worker.wire.audit import StateChangeRecord, ViolationRecord
from risk_worker.wire.outbound import reply_msg

BALANCE = 10_000_000.0
"""Wallet balance of every account (quote): typical orders use a small part of the margin."""
POSITION_NOTIONAL = 100_000.0
"""|quantity × mark| of each held position (quote): 20 positions → leverage 0.2."""
ORDER_NOTIONAL = 5_000.0
"""Approximate notional of each benchmark order (quote)."""
STRATEGY = "momentum"
"""Strategy of every third order; a strategy-scoped leverage policy applies to it."""
MAX_REQUEST_BYTES = 65_536
WORKER_ID = "bench"
WARMUP_CALLS = 2_000


class NullSink:
    """A :class:`~risk_worker.wire.audit.RiskEventSink` that drops every record."""

    def record(self, record: ViolationRecord | StateChangeRecord) -> None:
        """Drop the record."""


class BenchmarkError(RuntimeError):
    """A benchmarked check returned a wrong or undecodable answer."""


def account_id(i: int) -> str:
    """Id of the ``i``-th benchmark account, e.g. ``ACC00042`` (interned, as the wire layer
    hands ids to the book)."""
    return sys.intern(f"ACC{i:05d}")


def symbol(j: int) -> str:
    """Id of the ``j``-th benchmark symbol, e.g. ``SYM007`` (interned, as the wire layer hands
    symbols to the book)."""
    return sys.intern(f"SYM{j:03d}")


def mark_price(j: int) -> float:
    """Mark price of the ``j``-th symbol (quote per base unit)."""
    return 50.0 + 25.0 * j


def _policy(
    name: str,
    metric: Metric,
    op: Operator,
    threshold: float,
    scope: Scope = Scope.ACCOUNT,
    scope_id: str | None = None,
    priority: int = 100,
) -> Policy:
    pid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"risk-worker/bench/policy/{name}"))
    return Policy(
        pid, name, PolicyType.HARD, metric, op, threshold, scope, scope_id, True, priority
    )


def bench_policies() -> list[Policy]:
    """The nine built-in policies and five realistic extra ones, all enabled (14 in all)."""
    return [
        *default_policies(),
        _policy("Max Symbol Concentration", Metric.CONCENTRATION, Operator.LTE, 0.5, Scope.SYMBOL),
        _policy("Max Order Notional", Metric.ORDER_NOTIONAL, Operator.LTE, 1_000_000.0),
        _policy("Max Order Quantity", Metric.ORDER_QUANTITY, Operator.LTE, 100_000.0),
        _policy("Max Gross Exposure", Metric.GROSS_EXPOSURE, Operator.LTE, 50_000_000.0),
        _policy("Momentum Leverage", Metric.LEVERAGE, Operator.LTE, 5.0, Scope.STRATEGY, STRATEGY),
    ]


def wall_ms() -> int:
    """Wall clock, ms since the Unix epoch (the check handler's clock)."""
    return time.time_ns() // 1_000_000


def refresh_marks(engine: RiskEngine, positions: int, now_ms: int | None = None) -> None:
    """Set a fresh mark for every symbol, as ``market.tick.*`` would."""
    now = wall_ms() if now_ms is None else now_ms
    for j in range(positions):
        engine.set_mark(symbol(j), mark_price(j), now, now)


def build_engine(
    accounts: int = 1000, positions: int = 20, policies: int = 14, now_ms: int | None = None
) -> RiskEngine:
    """An engine holding a realistic book, loaded through the engine's event calls.

    Args:
        accounts: accounts ``ACC00000``…, each with a balance of :data:`BALANCE`.
        positions: positions per account on ``SYM000``…, alternately long and short, each
            :data:`POSITION_NOTIONAL` at its mark; every symbol gets a fresh mark.
        policies: how many of :func:`bench_policies` to load (at most 14).
        now_ms: event and mark time (ms since epoch); the wall clock when None.

    Raises:
        ValueError: a count is out of range.
    """
    available = bench_policies()
    if accounts < 1 or not 1 <= positions <= 1000 or not 1 <= policies <= len(available):
        raise ValueError(
            f"need accounts ≥ 1, 1 ≤ positions ≤ 1000, 1 ≤ policies ≤ {len(available)}"
        )
    now = wall_ms() if now_ms is None else now_ms
    engine = RiskEngine(RiskConfig(), worker_id=WORKER_ID)
    engine.load_policies(available[:policies])
    refresh_marks(engine, positions, now)
    for i in range(accounts):
        acct = account_id(i)
        engine.apply_pnl(PnlSnapshot(acct, BALANCE, None, 0.0, now))
        for j in range(positions):
            price = mark_price(j)
            quantity = POSITION_NOTIONAL / price * (1.0 if (i + j) % 2 == 0 else -1.0)
            engine.apply_position(PositionSnapshot(acct, symbol(j), quantity, price * 0.99, now))
    return engine


def request_bodies(
    n: int, accounts: int, positions: int = 20, market_every: int = 5, detail: str | None = None
) -> list[bytes]:
    """``n`` pre-encoded ``dry_run`` check requests spread over accounts and symbols.

    Limit orders priced near the mark, every ``market_every``-th a market order, every third
    naming the strategy :data:`STRATEGY`; sides alternate; notional about :data:`ORDER_NOTIONAL`.
    ``detail``: the requests' ``detail`` field (``"full"``: approvals with their post-trade
    metrics); None leaves it out (the compact reply, as most callers get).
    """
    bodies = []
    for k in range(n):
        j = (k * 7) % positions
        buy = k % 2 == 0
        price = mark_price(j)
        req: dict[str, Any] = {
            "order_id": f"bench-{k}",
            "account_id": account_id((k * 31) % accounts),
            "symbol": symbol(j),
            "side": "BUY" if buy else "SELL",
            "quantity": round(ORDER_NOTIONAL / price, 4),
            "dry_run": True,
            "timestamp": 1_700_000_000_000 + k,
        }
        if market_every > 0 and k % market_every == market_every - 1:
            req["order_type"] = "MARKET"
        else:
            req["order_type"] = "LIMIT"
            req["price"] = round(price * (1.001 if buy else 0.999), 4)
        if k % 3 == 0:
            req["strategy_id"] = STRATEGY
        if detail is not None:
            req["detail"] = detail
        bodies.append(msgspec.json.encode(req))
    return bodies


def percentiles(samples_ns: Sequence[int], elapsed_ns: int, prefix: str) -> dict[str, float]:
    """p50/p90/p99/mean in µs and calls/s of one timed loop, keys prefixed ``<prefix>_``."""
    ordered = sorted(samples_ns)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] / 1000.0

    return {
        f"{prefix}_p50_us": at(0.50),
        f"{prefix}_p90_us": at(0.90),
        f"{prefix}_p99_us": at(0.99),
        f"{prefix}_mean_us": sum(ordered) / n / 1000.0,
        f"{prefix}_calls_per_s": n / (elapsed_ns / 1e9) if elapsed_ns > 0 else 0.0,
    }


def _timed(
    call: Callable[[Any], Any], inputs: Sequence[Any], repeat: int, before_pass: Callable[[], None]
) -> tuple[list[int], int, list[Any]]:
    """Call ``call`` on every input ``repeat`` times with the GC off: (per-call ns, total ns,
    the results of the last pass)."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    results: list[Any] = []
    total = 0
    for item in inputs[:WARMUP_CALLS]:  # warm up caches and the interpreter's specializations
        call(item)
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(repeat):
            before_pass()
            last = r == repeat - 1
            results = []
            start = clock()
            for item in inputs:
                t0 = clock()
                out = call(item)
                samples.append(clock() - t0)
                if last:
                    results.append(out)
            total += clock() - start
    finally:
        if was_enabled:
            gc.enable()
    return samples, total, results


def _verify_reply(payload: bytes, order: Order, decision: Decision | None) -> None:
    try:
        reply = msgspec.json.decode(payload)
    except msgspec.DecodeError as exc:
        raise BenchmarkError(f"order {order.order_id}: undecodable reply: {exc}") from exc
    if reply.get("order_id") != order.order_id or reply.get("account_id") != order.account_id:
        raise BenchmarkError(f"order {order.order_id}: reply names another order: {reply}")
    if reply.get("approved") is not True or decision is None or not decision.approved:
        raise BenchmarkError(f"order {order.order_id}: not approved: {reply.get('reason')}")


def verify_denial(engine: RiskEngine, handler: CheckHandler, positions: int) -> None:
    """An order over the order-notional limit must be denied ``order_too_large``.

    Raises:
        BenchmarkError: it was not (the policies are not being evaluated).
    """
    price = mark_price(0)
    body = msgspec.json.encode(
        {
            "order_id": "bench-deny",
            "account_id": account_id(0),
            "symbol": symbol(0),
            "side": "BUY",
            "quantity": 2_000_000.0 / price,
            "price": price,
            "dry_run": True,
        }
    )
    refresh_marks(engine, positions)
    reply = msgspec.json.decode(handler.answer(body).payload)
    if reply.get("approved") is not False or reply.get("rejection_reason") != (
        DenyReason.ORDER_TOO_LARGE.value
    ):
        raise BenchmarkError(f"an order over the notional limit was not denied: {reply}")


def measure(
    engine: RiskEngine, bodies: Sequence[bytes], repeat: int = 5, full: bool = False
) -> dict[str, float]:
    """Time the whole check path and each stage of it over ``bodies``, ``repeat`` passes each.

    Stages: ``answer`` (``CheckHandler.answer``: decode → decide → encode, as served),
    ``decode`` (``check_request.parse_check``), ``decide`` (``RiskEngine.check`` on
    pre-parsed orders, as the answer decides them: compact unless ``full``) and ``encode``
    (``reply_msg`` + msgspec encoding of pre-computed decisions; the full reply with
    ``full``, as bodies asking ``detail`` ``full`` get, else the compact one). Marks are
    refreshed before every pass, as ticks would, so market orders always have a fresh price.

    Returns:
        ``<stage>_p50_us``, ``_p90_us``, ``_p99_us``, ``_mean_us`` and ``_calls_per_s`` per
        stage, ``calls`` (timed calls per stage), ``policies``, ``gc_disabled`` (1.0: the GC
        was off during every timed loop) and ``verified`` (1.0: every reply approved).

    Raises:
        BenchmarkError: a reply did not decode, named another order or was not approved, or an
            order breaking a policy was approved.
        ValueError: no bodies or ``repeat`` < 1.
    """
    if not bodies or repeat < 1:
        raise ValueError("need at least one body and repeat ≥ 1")
    positions = len(engine.book.marks)
    handler = CheckHandler(engine, lambda: True, WORKER_ID, MAX_REQUEST_BYTES, NullSink())
    orders = [check_request.parse_check(b, MAX_REQUEST_BYTES) for b in bodies]

    def marks() -> None:
        refresh_marks(engine, positions)

    figures: dict[str, float] = {}

    samples, total, answers = _timed(handler.answer, bodies, repeat, marks)
    for order, answer in zip(orders, answers, strict=True):
        _verify_reply(answer.payload, order, answer.decision)
    figures |= percentiles(samples, total, "answer")

    samples, total, _ = _timed(
        lambda b: check_request.parse_check(b, MAX_REQUEST_BYTES), bodies, repeat, marks
    )
    figures |= percentiles(samples, total, "decode")

    now = wall_ms()

    def decide(order: Order) -> Decision:
        return engine.check(order, now, True, full)

    def decide_pass() -> None:
        nonlocal now
        marks()
        now = wall_ms()

    samples, total, decisions = _timed(decide, orders, repeat, decide_pass)
    for order, decision in zip(orders, decisions, strict=True):
        if not decision.approved:
            raise BenchmarkError(f"order {order.order_id}: not approved: {decision.message}")
    figures |= percentiles(samples, total, "decide")

    encoder = msgspec.json.Encoder()
    pairs = list(zip(orders, decisions, strict=True))

    def encode(pair: tuple[Order, Decision]) -> bytes:
        order, decision = pair
        return encoder.encode(
            reply_msg(order.order_id, order.account_id, decision, now, 0, WORKER_ID, full)
        )

    samples, total, payloads = _timed(encode, pairs, repeat, lambda: None)
    for (order, decision), payload in zip(pairs, payloads, strict=True):
        _verify_reply(payload, order, decision)
    figures |= percentiles(samples, total, "encode")

    verify_denial(engine, handler, positions)
    figures["calls"] = float(len(bodies) * repeat)
    figures["policies"] = float(len(engine.policies or ()))
    figures["gc_disabled"] = 1.0
    figures["verified"] = 1.0
    return figures
