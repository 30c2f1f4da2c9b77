"""A book and its metrics for the tests of the risk metrics (test_domain_metrics*.py)."""

from __future__ import annotations

from risk_worker.domain.book import AccountBook
from risk_worker.domain.book_events import PnlSnapshot, PositionSnapshot
from risk_worker.domain.metrics import compute_metrics
from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.types import MS_PER_DAY

ACCT = "acct-1"
NOW = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
DAY_START_MS = NOW - NOW % MS_PER_DAY
CONFIG = RiskConfig(margin_rates={"ETHUSDT": 0.2})


def build_book(
    balance: float = 10_000.0,
    positions: tuple[tuple[str, float, float], ...] = (
        ("BTCUSDT", 2.0, 100.0),
        ("ETHUSDT", -3.0, 50.0),
    ),
    marks: tuple[tuple[str, float, int], ...] = (
        ("BTCUSDT", 110.0, NOW - 1_000),
        ("ETHUSDT", 40.0, NOW - 1_000),
    ),
    pending: tuple[PendingOrder, ...] = (),
) -> AccountBook:
    book = AccountBook()
    book.apply_pnl(PnlSnapshot(ACCT, balance, None, None, 1))
    for symbol, qty, entry in positions:
        book.apply_position(PositionSnapshot(ACCT, symbol, qty, entry, 1))
    for symbol, price, received in marks:
        book.set_mark(symbol, price, timestamp=received, now_ms=received)
    for order in pending:
        book.accounts[ACCT].pending.add(order)
    return book


def metrics_of(book: AccountBook, config: RiskConfig = CONFIG, now: int = NOW) -> AccountMetrics:
    return compute_metrics(book.accounts[ACCT], book.marks, config, now)
