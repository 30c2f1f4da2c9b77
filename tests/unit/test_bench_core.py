"""The check-path microbenchmark: its book approves typical orders and it verifies its replies."""

from __future__ import annotations

import msgspec
import pytest

from risk_worker.adapters.check_handler import CheckHandler
from risk_worker.bench.core import (
    MAX_REQUEST_BYTES,
    BenchmarkError,
    NullSink,
    build_engine,
    measure,
    request_bodies,
)
from risk_worker.domain.types import OrderType
from risk_worker.wire import check_request

STAGES = ("answer", "decode", "decide", "encode")
FIGURES = ("p50_us", "p90_us", "p99_us", "mean_us", "calls_per_s")


def test_book_and_requests_are_realistic() -> None:
    engine = build_engine(accounts=10, positions=5)
    assert len(engine.known_accounts()) == 10
    assert all(len(a.positions) == 5 for a in engine.book.accounts.values())
    assert len(engine.book.marks) == 5
    assert engine.policies is not None and len(engine.policies) == 14
    orders = [check_request.parse_check(b, MAX_REQUEST_BYTES) for b in request_bodies(50, 10, 5)]
    assert all(o.dry_run for o in orders)
    assert {o.order_type for o in orders} == {OrderType.LIMIT, OrderType.MARKET}
    assert len({o.account_id for o in orders}) == 10
    assert len({o.symbol for o in orders}) == 5


def test_measure_reports_every_stage_and_verifies_approvals() -> None:
    engine = build_engine(accounts=10, positions=5)
    bodies = request_bodies(300, accounts=10, positions=5)
    figures = measure(engine, bodies, repeat=2)
    for stage in STAGES:
        for figure in FIGURES:
            assert f"{stage}_{figure}" in figures
    assert figures["calls"] == 600.0
    assert figures["policies"] == 14.0
    assert figures["gc_disabled"] == 1.0
    assert figures["verified"] == 1.0
    handler = CheckHandler(engine, lambda: True, "t", MAX_REQUEST_BYTES, NullSink())
    for body in bodies:
        reply = msgspec.json.decode(handler.answer(body).payload)
        assert reply["approved"] is True, reply


def test_measure_raises_when_a_check_is_denied() -> None:
    engine = build_engine(accounts=10, positions=5)
    bodies = request_bodies(20, accounts=11, positions=5)  # ACC00010 is not in the book
    with pytest.raises(BenchmarkError, match="not approved"):
        measure(engine, bodies, repeat=1)
