"""Compact approvals over NATS, the full reply on request (subjects.md §5.2): the ``detail``
field and the ``Risk-Detail`` header, on the services endpoint and the plain subscription, for
single checks and batches, through the client, and forwarded to the account's owner."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import pytest

from risk_worker.client import CheckOrder, RiskClient
from risk_worker.domain.policies import ORDER_METRICS, default_policies
from tests.harness import ENC, Harness
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory

DETAIL = "Risk-Detail"


async def described(h: Harness, account: str) -> None:
    await h.pnl(account, 100_000.0)
    await h.tick("BTCUSDT", 50_000.0)
    await h.settle()


def body(account: str, quantity: float = 0.5, **extra: Any) -> bytes:
    order = {"order_id": uuid.uuid4().hex, "account_id": account, "symbol": "BTCUSDT"}
    return ENC.encode({**order, "side": "BUY", "quantity": quantity, "price": 50_000.0, **extra})


async def ask(
    h: Harness,
    data: bytes,
    headers: dict[str, str] | None = None,
    subject: str = "risk.check.order",
) -> tuple[dict[str, Any], dict[str, str], int]:
    """(decoded reply, its headers, its size in bytes)."""
    msg = await h.nc.request(subject, data, timeout=2, headers=headers)
    return msgspec.json.decode(msg.data), msg.headers or {}, len(msg.data)


@pytest.mark.parametrize("services_protocol", [True, False])
async def test_check_when_plain_then_compact_and_when_full_asked_then_post_trade_metrics(
    harness_factory: HarnessFactory, services_protocol: bool
) -> None:
    h = await harness_factory(services_protocol=services_protocol)
    account = f"RD{uuid.uuid4().hex[:8]}"
    await described(h, account)

    plain, headers, size = await ask(h, body(account, dry_run=True))
    assert plain["approved"] is True and plain["post_trade_metrics"] is None
    assert plain["worker_id"] == h.settings.worker_id and plain["risk_level"] == "LOW"
    assert plain["account_id"] == account and plain["warnings"] == []
    assert "Nats-Service-Error-Code" not in headers and size < 300

    full, _, full_size = await ask(h, body(account, dry_run=True, detail="full"))
    assert full["approved"] is True
    assert full["post_trade_metrics"]["gross_exposure"] == pytest.approx(25_000.0)
    assert full["post_trade_metrics"]["leverage"] == pytest.approx(0.25)
    assert full_size > 4 * size

    by_header, _, _ = await ask(h, body(account, dry_run=True), {DETAIL: "full"})
    assert by_header["post_trade_metrics"]["equity"] == pytest.approx(100_000.0)
    compact, _, _ = await ask(h, body(account, dry_run=True), {DETAIL: "compact"})
    assert compact["approved"] is True and compact["post_trade_metrics"] is None


async def test_check_when_detail_invalid_then_invalid_request_naming_it(harness: Harness) -> None:
    account = f"RD{uuid.uuid4().hex[:8]}"
    await described(harness, account)
    reply, headers, _ = await ask(harness, body(account, detail="yes"))
    assert reply["rejection_reason"] == "invalid_request"
    assert headers["Nats-Service-Error-Code"] == "400"
    assert headers["Nats-Service-Error"].startswith("detail: ")
    reply, headers, _ = await ask(harness, body(account), {DETAIL: "FULL"})
    assert reply["rejection_reason"] == "invalid_request"
    assert headers["Nats-Service-Error"].startswith(f"{DETAIL}: ")
    assert len(harness.worker.engine.book.accounts[account].pending) == 0  # nothing reserved


async def test_check_when_denied_by_policy_then_metrics_without_asking(
    harness_factory: HarnessFactory,
) -> None:
    # the post-trade policies alone (Max Order Size would stop the order first), 2 % margin
    post_trade = [p for p in default_policies() if p.metric not in ORDER_METRICS]
    h = await harness_factory(margin_rates={"BTCUSDT": 0.02}, policies=post_trade)
    account = f"RD{uuid.uuid4().hex[:8]}"
    await described(h, account)
    reply, _, _ = await ask(h, body(account, quantity=30.0))  # 1.5M notional = 15x
    assert reply["rejection_reason"] == "policy_violation"
    assert reply["violations"][0]["policy_name"] == "Max Account Leverage"
    assert reply["post_trade_metrics"]["leverage"] == pytest.approx(15.0)
    unknown, _, _ = await ask(h, body("RD-nobody", detail="full"))
    assert unknown["rejection_reason"] == "unknown_account"
    assert unknown["post_trade_metrics"] is None  # no simulation ran, as before


@pytest.mark.parametrize("services_protocol", [True, False])
async def test_batch_when_plain_compact_and_when_full_asked_then_metrics(
    harness_factory: HarnessFactory, services_protocol: bool
) -> None:
    h = await harness_factory(services_protocol=services_protocol)
    account = f"RB{uuid.uuid4().hex[:8]}"
    await described(h, account)

    def orders(*extra: dict[str, Any]) -> list[Any]:
        return [msgspec.json.decode(body(account, 0.1, dry_run=True, **e)) for e in extra]

    def shown(reply: dict[str, Any]) -> list[bool]:
        return [d["post_trade_metrics"] is not None for d in reply["decisions"]]

    plain, _, _ = await ask(h, ENC.encode({"orders": orders({}, {})}), subject="risk.check.batch")
    assert plain["approved"] is True and shown(plain) == [False, False]
    data = ENC.encode({"orders": orders({}, {}), "detail": "full"})
    field, _, _ = await ask(h, data, subject="risk.check.batch")
    assert shown(field) == [True, True]
    data = ENC.encode({"orders": orders({}, {})})
    header, _, _ = await ask(h, data, {DETAIL: "full"}, subject="risk.check.batch")
    assert shown(header) == [True, True]
    one, _, _ = await ask(
        h, ENC.encode({"orders": orders({}, {"detail": "full"})}), subject="risk.check.batch"
    )
    assert shown(one) == [False, True]
    bad, headers, _ = await ask(h, data, {DETAIL: "all"}, subject="risk.check.batch")
    assert headers["Nats-Service-Error-Code"] == "400" and bad["field"] == DETAIL


async def test_client_when_detail_full_then_decisions_carry_post_trade_metrics(
    harness: Harness,
) -> None:
    await described(harness, "RDC")
    order = CheckOrder(
        account_id="RDC", symbol="BTCUSDT", side="BUY", quantity=0.5, price=50_000.0, dry_run=True
    )
    async with await RiskClient.connect(harness.settings.nats_url) as client:
        compact = await client.check(order)
        full = await client.check(msgspec.structs.replace(order, order_id="rdc-2"), detail="full")
        batch = await client.check_batch([order], detail="full")
        with pytest.raises(ValueError, match="detail"):
            await client.check(order, detail="verbose")  # type: ignore[arg-type]
    assert compact.approved and compact.post_trade_metrics is None
    assert full.approved and full.post_trade_metrics is not None
    assert full.post_trade_metrics.gross_exposure == pytest.approx(25_000.0)
    assert batch.approved and batch.decisions[0].post_trade_metrics is not None


async def test_check_when_forwarded_to_the_owner_then_the_detail_header_still_counts(
    harness_factory: HarnessFactory,
) -> None:
    bucket = f"rc_{uuid.uuid4().hex[:10]}"
    a = await harness_factory(kv_bucket=bucket)
    b = await harness_factory(kv_bucket=bucket)
    account = f"RDF{uuid.uuid4().hex[:6]}"
    for h in (a, b):
        await described(h, account)

    def routed() -> bool:  # both see each other: one of them forwards the account
        services = [h.worker.service for h in (a, b)]
        return any(s is not None and s.checks.forward_target(account) for s in services)

    await wait_for(routed, 10.0, 0.05, "the two workers never saw each other")
    replies = await asyncio.gather(
        *(ask(a, body(account, dry_run=True), {DETAIL: "full"}) for _ in range(20))
    )
    batches = await asyncio.gather(
        *(
            ask(a, ENC.encode({"orders": [msgspec.json.decode(body(account, dry_run=True))]}),
                {DETAIL: "full"}, subject="risk.check.batch")
            for _ in range(10)
        )
    )  # fmt: skip
    assert len({r["worker_id"] for r, _, _ in replies}) == 1  # the owner decided every one
    assert all(r["approved"] and r["post_trade_metrics"] is not None for r, _, _ in replies)
    assert all(r["decisions"][0]["post_trade_metrics"] is not None for r, _, _ in batches)
