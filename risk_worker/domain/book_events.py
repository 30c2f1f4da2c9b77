"""The account events the book applies: position and PnL snapshots and fills.

Plain msgspec Structs, decoded from the wire by :mod:`~risk_worker.wire.inbound` and applied by
:class:`~risk_worker.domain.book.AccountBook`. This module stays interpreted in the compiled
decision core (:mod:`risk_worker._core`): a compiled module would lose the field types msgspec
reads from a Struct's annotations.
"""

from __future__ import annotations

import msgspec

from risk_worker.domain.types import Side


class PositionSnapshot(msgspec.Struct, frozen=True, gc=False):
    """``positions.update``: full state of one position (replaces it).

    quantity is signed base units; entry_price quote per base unit; timestamp ms since epoch.
    With ``strategy_id`` it is that strategy's position within the account
    (:mod:`~risk_worker.domain.strategy_book`), not the account's.
    """

    account_id: str
    symbol: str
    quantity: float
    entry_price: float
    timestamp: int
    strategy_id: str | None = None


class Fill(msgspec.Struct, frozen=True, gc=False):
    """``fills.confirmed``: one execution. quantity > 0 base units; fee quote, debited.

    With ``strategy_id`` it also moves that strategy's book within the account.
    """

    fill_id: str
    order_id: str
    account_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    timestamp: int
    strategy_id: str | None = None


class PnlSnapshot(msgspec.Struct, frozen=True, gc=False):
    """``pnl.update``: the account's wallet balance (authoritative) or, failing that, equity."""

    account_id: str
    balance: float | None
    equity: float | None
    realized_pnl: float | None
    timestamp: int
