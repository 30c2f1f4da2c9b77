"""W3C Trace Context on NATS: the ``traceparent`` header of a check request (subjects.md §5a).

A client may send ``traceparent`` (https://www.w3.org/TR/trace-context/#traceparent-header)
on ``risk.check.order`` or ``risk.check.batch``. The worker starts no span of its own: it
carries the caller's value unchanged into the reply headers, the log lines of that check and
the ``context`` of its violation records, so a trace of the OMS shows the risk hop. A value
that is not a valid ``traceparent`` is ignored (the check goes on without it, nothing
echoed): tracing never denies an order.

Format: ``version-trace_id-parent_id-flags``, lower-case hex of 2, 32, 16 and 2 digits;
version ``ff`` is invalid, and an all-zero trace id or parent id is invalid. Version ``00``
is exactly 55 characters; a later version may append ``-…`` fields, which are kept.
"""

from __future__ import annotations

import re

TRACEPARENT = "traceparent"
"""The header name (W3C's, lower case); replies carry it so."""
CANONICAL = "Traceparent"
"""The same header as nats.go's ``Header.Set`` writes it (MIME-canonical); also read."""
MAX_LENGTH = 256
"""Longer values are ignored outright (a header is not a place for a payload)."""
_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16


def parse_traceparent(value: str | None) -> str | None:
    """``value`` when it is a valid W3C ``traceparent``, else None (ignore it).

    Args:
        value: the header's value as received (None when absent).

    Returns:
        the value unchanged, 55 characters for version ``00``; None when absent or malformed.
    """
    if value is None or len(value) > MAX_LENGTH:
        return None
    m = _FORMAT.match(value)
    if m is None:
        return None
    version, trace_id, parent_id, _flags = m.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_PARENT:
        return None
    rest = value[m.end() :]
    if version == "00":
        return value if not rest else None
    return value if not rest or rest[0] == "-" else None


def trace_id(traceparent: str) -> str:
    """The 32 hex digits of the trace id of a valid ``traceparent``."""
    return traceparent[3:35]


def header_traceparent(headers: dict[str, str] | None) -> str | None:
    """The valid ``traceparent`` (or ``Traceparent``) of a message's headers, or None (no
    headers: no work)."""
    if not headers:
        return None
    value = headers.get(TRACEPARENT)
    return parse_traceparent(headers.get(CANONICAL) if value is None else value)


def log_fields(traceparent: str | None) -> dict[str, str]:
    """The extra fields a log line of a traced check carries: ``traceparent`` and
    ``trace_id``; empty without a trace."""
    if traceparent is None:
        return {}
    return {TRACEPARENT: traceparent, "trace_id": trace_id(traceparent)}
