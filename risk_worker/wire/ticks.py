"""``market.tick.<symbol>``: the tick decoder, on the worker's busiest path.

A tick's symbol is its subject's last token (subject permissions then limit which mark a
publisher moves); a body ``symbol`` that differs from it makes the tick invalid. The body is
decoded by msgspec straight into :class:`~risk_worker.wire.inbound.TickMsg` with its bounds.
Subjects repeat (one per symbol), so each subject's validated token is kept in a bounded dict:
a tick costs one look-up instead of a split and a regular expression.
"""

from __future__ import annotations

from sys import intern

import msgspec

from risk_worker.domain.bounds import is_identifier
from risk_worker.errors import InvalidMessageError
from risk_worker.wire.inbound import TickMsg
from risk_worker.wire.inbound import _invalid as invalid_message

SYMBOL_CACHE_MAX = 16_384
"""Most subjects whose symbol token is kept (the dict is emptied beyond)."""

_TICK = msgspec.json.Decoder(TickMsg)
_SYMBOLS: dict[str, str] = {}
"""Subject → its validated symbol token."""


def subject_symbol(subject: str) -> str:
    """The symbol of ``market.tick.<symbol>``: the subject's last token, an identifier.

    Raises:
        InvalidMessageError: the token is not an identifier (``bad_identifier``).
    """
    symbol = _SYMBOLS.get(subject)
    if symbol is not None:
        return symbol
    symbol = subject.rsplit(".", 1)[-1]
    if not is_identifier(symbol):
        raise InvalidMessageError("symbol", "bad_identifier", f"bad symbol token {symbol!r}")
    if len(_SYMBOLS) >= SYMBOL_CACHE_MAX:
        _SYMBOLS.clear()
    symbol = _SYMBOLS[subject] = intern(symbol)  # the book's key (wire.inbound)
    return symbol


def parse_tick(data: bytes, subject: str) -> tuple[str, float, int | None]:
    """Decode ``market.tick.<symbol>`` into (symbol, mark price, timestamp or None).

    The mark price (quote per base unit) is ``price``, else the mid of ``bid`` and ``ask``
    (finite and within the price bounds since both are); the timestamp is ms since the epoch.

    Raises:
        InvalidMessageError: not JSON or JSON nested too deeply (``malformed_json``), a field
            of the wrong type or out of bounds, a bad symbol token, a body ``symbol`` other
            than the subject's, or neither ``price`` nor both ``bid`` and ``ask``.
    """
    try:
        m = _TICK.decode(data)
    except msgspec.MsgspecError as exc:
        raise invalid_message(exc) from exc
    except RecursionError as exc:  # msgspec's nesting limit (about 1,000 levels)
        raise InvalidMessageError("$", "malformed_json", "JSON nested too deeply") from exc
    symbol = _SYMBOLS.get(subject)
    if symbol is None:
        symbol = subject_symbol(subject)
    if m.symbol is not None and m.symbol != symbol:
        raise InvalidMessageError(
            "symbol",
            "out_of_range",
            f"body symbol {m.symbol!r} differs from the subject's {symbol!r}",
        )
    if m.price is not None:
        return symbol, m.price, m.timestamp
    if m.bid is not None and m.ask is not None:
        return symbol, (m.bid + m.ask) / 2.0, m.timestamp
    raise InvalidMessageError("price", "missing_field", "price, or both bid and ask, is required")
