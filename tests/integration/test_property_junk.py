"""Property, over a real nats-server: hostile messages on every inbound subject (issue 10).

Each example starts a worker and feeds two accounts: ACC_OK, on a symbol the junk never touches,
and ACC1, the account the junk is about (known, so its checks are decided in full). Then it
publishes a hypothesis-drawn batch of junk to ``positions.update``, ``fills.confirmed``,
``pnl.update``, ``market.tick.BTCUSDT`` and ``risk.check.order``. Required: every request gets a
reply and no malformed one is approved; every event is processed (applied, ignored or dropped
and counted); the worker keeps running and ready; every number in the book stays finite; and
ACC_OK still gets correct decisions.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import msgspec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.book import AccountBook
from risk_worker.wire import check_request
from tests.harness import Harness, now_ms, start_harness, stop_harness
from tests.junk import ACCOUNT, BALANCE, MARK, SYMBOL, payloads, templates

CHECK = "risk.check.order"
OK_ACCOUNT = "ACC_OK"
OK_SYMBOL = "ETHUSDT"
OK_MARK = 3_000.0
TEMPLATES = templates(now_ms())
SUBJECTS = sorted(TEMPLATES)

junk_batches = st.lists(
    st.sampled_from(SUBJECTS).flatmap(
        lambda subject: payloads(TEMPLATES[subject]).map(lambda data: (subject, data))
    ),
    min_size=1,
    max_size=25,
)


def assert_book_finite(book: AccountBook) -> None:
    """Every stored number of every account and mark is finite (marks also positive)."""
    for symbol, mark in book.marks.items():
        assert math.isfinite(mark.price) and mark.price > 0.0, (symbol, mark)
    for acct in book.accounts.values():
        values = [acct.balance, acct.realized_pnl, acct.peak_equity, acct.day_start_equity]
        for value in values:
            assert value is None or math.isfinite(value), (acct.account_id, values)
        for pos in acct.positions.values():
            assert math.isfinite(pos.quantity) and math.isfinite(pos.entry_price), pos


async def scenario(url: str, batch: list[tuple[str, bytes]]) -> None:
    h: Harness = await start_harness(url)
    try:
        await h.pnl(OK_ACCOUNT, 100_000.0)
        await h.tick(OK_SYMBOL, OK_MARK)
        await h.pnl(ACCOUNT, BALANCE)  # the account the junk is about: known, so checks go deep
        await h.tick(SYMBOL, MARK)
        await h.settle()
        requests = []
        for subject, data in batch:
            if subject == CHECK:
                requests.append(data)
            else:
                await h.publish(subject, data)
        replies = await asyncio.gather(*(h.request(data) for data in requests))
        await h.settle()
        for name in ("risk_events_invalid_total", "risk_events_ignored_total"):
            if h.metric(name):
                event(f"batch had {name.removeprefix('risk_').removesuffix('_total')}")
        for data, reply in zip(requests, replies, strict=True):
            decoded: dict[str, Any] = msgspec.json.decode(reply.data)
            event(f"reply: {decoded['rejection_reason'] or 'approved'}")
            try:
                check_request.parse_check(data, h.settings.max_request_bytes)
            except Exception:  # RecursionError too: not well-formed
                assert decoded["approved"] is False
                assert decoded["rejection_reason"] == "invalid_request", decoded
        engine = h.worker.engine
        assert_book_finite(engine.book)
        for account_id in engine.known_accounts():
            metrics = engine.metrics(account_id, now_ms())
            assert metrics is not None
            for name in ("equity", "gross_exposure", "net_exposure", "margin_used"):
                assert math.isfinite(getattr(metrics, name)), (account_id, name, metrics)
        assert all(
            v in {"connected", "confirmed", "loaded", "reachable", "caught_up", "disabled"}
            for k, v in h.worker.readiness().items()
            if k != "decision_core"  # which core runs, not a part's health
        ), h.worker.readiness()
        small = await h.check(OK_ACCOUNT, OK_SYMBOL, "BUY", 1.0, OK_MARK, dry_run=True)
        assert small["approved"] is True, small
        large = await h.check(OK_ACCOUNT, OK_SYMBOL, "BUY", 400.0, OK_MARK)
        # far over 10 × equity: Max Order Size, the first control that denies it
        assert large["approved"] is False and large["rejection_reason"] == "order_too_large"
    finally:
        await stop_harness(h)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=junk_batches)
def test_worker_when_fed_junk_on_every_subject_then_replies_counts_and_stays_correct(
    nats_server: NatsServer, batch: list[tuple[str, bytes]]
) -> None:
    asyncio.run(scenario(nats_server.url, batch))
