"""A symbol's mark: the latest price the book values its positions at.

Kept by :class:`~risk_worker.domain.book.AccountBook` (``marks``: symbol → Mark), set by ticks
(:mod:`~risk_worker.domain.marks`) and restored from snapshots
(:mod:`~risk_worker.domain.persistence`); a check reads the mark of every position it values,
so the class is a plain one, compiled with the domain into a native class (fields at fixed
offsets), not a NamedTuple (whose fields are descriptors looked up by name).
"""

from __future__ import annotations


class Mark:
    """Latest price of a symbol: price (quote), received_ms (worker clock, ms since epoch),
    timestamp (the source's, ms since epoch).

    A plain class, not a NamedTuple: compiled with the domain it is a native class whose
    fields a check reads at a fixed offset (a NamedTuple field is a descriptor looked up by
    name), which matters for the positions a check values at their marks. Never changed once
    made (a new tick puts a new Mark), so it compares and hashes by value like the tuple did.
    """

    __slots__ = ("price", "received_ms", "timestamp")

    def __init__(self, price: float, received_ms: int, timestamp: int) -> None:
        self.price = price
        self.received_ms = received_ms
        self.timestamp = timestamp

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mark):
            return NotImplemented
        return (self.price, self.received_ms, self.timestamp) == (
            other.price,
            other.received_ms,
            other.timestamp,
        )

    def __hash__(self) -> int:
        return hash((self.price, self.received_ms, self.timestamp))

    def __repr__(self) -> str:
        return f"Mark({self.price!r}, received_ms={self.received_ms}, timestamp={self.timestamp})"
