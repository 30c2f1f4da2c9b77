"""Property: events at the edges of their documented bounds never make a book number non-finite.

Random sequences of well-formed ``positions.update``, ``fills.confirmed``, ``pnl.update`` and
``market.tick.*`` messages, with prices, quantities and money drawn up to the bounds of
subjects.md §1, go through the same parsers and engine calls as the NATS handlers. Afterwards
every stored number, every metric of every account, every check's post-trade metrics and every
monitor report must be finite (ratios may be infinite only where the contract makes them null).
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risk_worker.domain.bounds import MONEY_MAX, PRICE_MAX, PRICE_MIN, QUANTITY_MAX
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.policies import default_policies
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.wire import check_request, inbound, ticks
from tests.junk import encode

T0 = 1_700_000_000_000
ACCOUNTS = ("A1", "A2")
SYMBOLS = ("S1", "S2", "S3")

prices = st.sampled_from([PRICE_MIN, 1e-6, 1.0, 3_000.0, 50_000.0, 1e9, PRICE_MAX]) | st.floats(
    PRICE_MIN, PRICE_MAX
)
quantities = st.sampled_from([1e-9, 0.5, 10.0, 1e6, QUANTITY_MAX]) | st.floats(1e-9, QUANTITY_MAX)
money = st.sampled_from([0.0, 1.0, -1.0, 1e12, MONEY_MAX, -MONEY_MAX]) | st.floats(
    -MONEY_MAX, MONEY_MAX
)


@st.composite
def events(draw: st.DrawFn, step: int) -> tuple[str, dict[str, Any]]:
    """One well-formed event at ``T0 + step`` ms (subject, body)."""
    kind = draw(st.sampled_from(["position", "fill", "pnl", "tick"]))
    ts = T0 + step
    account = draw(st.sampled_from(ACCOUNTS))
    symbol = draw(st.sampled_from(SYMBOLS))
    if kind == "position":
        qty = draw(quantities) * draw(st.sampled_from([1.0, -1.0, 0.0]))
        body = {"account_id": account, "symbol": symbol, "quantity": qty, "timestamp": ts}
        return "positions.update", {**body, "entry_price": draw(prices)}
    if kind == "fill":
        return "fills.confirmed", {
            "fill_id": f"f{step}",
            "order_id": f"o{step}",
            "account_id": account,
            "symbol": symbol,
            "side": draw(st.sampled_from(["BUY", "SELL"])),
            "quantity": draw(quantities),
            "price": draw(prices),
            "fee": draw(money),
            "timestamp": ts,
        }
    if kind == "pnl":
        return "pnl.update", {"account_id": account, "balance": draw(money), "timestamp": ts}
    return f"market.tick.{symbol}", {"price": draw(prices), "timestamp": ts}


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, dict[str, Any]]]:
    """Up to 40 events, one per millisecond."""
    n = draw(st.integers(1, 40))
    return [draw(events(i)) for i in range(n)]


def apply(engine: RiskEngine, subject: str, body: dict[str, Any], now: int) -> None:
    """What the NATS handlers do with one event (parse, then the engine call)."""
    data = encode(body)
    if subject == "positions.update":
        engine.apply_position(inbound.parse_position(data))
    elif subject == "fills.confirmed":
        engine.apply_fill(inbound.parse_fill(data))
    elif subject == "pnl.update":
        engine.apply_pnl(inbound.parse_pnl(data))
    else:
        symbol, price, ts = ticks.parse_tick(data, subject)
        engine.set_mark(symbol, price, now if ts is None else ts, now)


def assert_metrics_finite(m: AccountMetrics) -> None:
    """Sums and the drawdowns are finite; ratios may be inf (null on the wire) but never NaN."""
    for name in ("equity", "balance", "unrealized_pnl", "gross_exposure", "net_exposure"):
        assert math.isfinite(getattr(m, name)), (name, m)
    for name in ("margin_used", "peak_equity", "day_start_equity", "drawdown_max"):
        assert math.isfinite(getattr(m, name)), (name, m)
    assert math.isfinite(m.drawdown_daily), m
    for name in ("leverage", "margin_ratio"):
        assert not math.isnan(getattr(m, name)), (name, m)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), prices, quantities)
def test_book_when_events_at_their_bounds_then_every_number_stays_finite(
    history: list[tuple[str, dict[str, Any]]], price: float, qty: float
) -> None:
    engine = RiskEngine(RiskConfig())
    engine.load_policies(default_policies())
    for step, (subject, body) in enumerate(history):
        apply(engine, subject, body, T0 + step)
    now = T0 + len(history)
    for mark in engine.book.marks.values():
        assert PRICE_MIN <= mark.price <= PRICE_MAX
    for acct in engine.book.accounts.values():
        assert math.isfinite(acct.balance) and math.isfinite(acct.realized_pnl)
        for pos in acct.positions.values():
            assert math.isfinite(pos.quantity) and math.isfinite(pos.entry_price)
    for account_id in engine.known_accounts():
        metrics = engine.metrics(account_id, now)
        assert metrics is not None
        assert_metrics_finite(metrics)
        order = check_request.parse_check(
            encode(
                {
                    "order_id": "probe",
                    "account_id": account_id,
                    "symbol": SYMBOLS[0],
                    "side": "BUY",
                    "quantity": qty,
                    "price": price,
                }
            ),
            65_536,
        )
        decision = engine.check(order, now, True)
        if decision.metrics is not None:
            assert_metrics_finite(decision.metrics)
    for report in engine.monitor(now):
        assert_metrics_finite(report.metrics)
    for acct in engine.book.accounts.values():
        for value in (acct.peak_equity, acct.day_start_equity):
            assert value is None or math.isfinite(value), acct.account_id
