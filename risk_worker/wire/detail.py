"""How much a check reply carries: compact (the default) or full (subjects.md §5.2).

An approval's reply is compact unless the request asks for the full one: the decision, the
reason, the risk level, the warnings and the echoed ids, with ``post_trade_metrics`` null (about
250 bytes). The full post-trade metrics (1.5-2.2 KB of JSON with a dozen policies, most of a
reply's encoding and writing) are sent only to callers that read them: a request with ``"detail":
"full"`` in its body (a check, a batch, or one order of a batch), or the header
``Risk-Detail: full``. Denials keep what they carry whatever was asked (a ``policy_violation``
its metrics). A ``detail`` other than ``full`` or ``compact`` is ``invalid_request`` naming the
field (``detail``, or the header's name ``Risk-Detail``); nothing is decided then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from risk_worker.errors import InvalidMessageError
from risk_worker.wire.trace import TRACEPARENT

FULL = "full"
"""Ask for the full reply (post-trade metrics on an approval)."""
COMPACT = "compact"
"""The default: no post-trade metrics on an approval."""
DETAIL_HEADER = "Risk-Detail"
"""The request header asking for a reply's detail (``full`` or ``compact``)."""

Detail = Literal["full", "compact"]
"""The values of a request's ``detail`` field (validated by the decoder)."""


def header_detail(headers: Mapping[str, str] | None) -> str | None:
    """The raw ``Risk-Detail`` header of a request, None without one (no headers: no work)."""
    if not headers:
        return None
    return headers.get(DETAIL_HEADER)


def header_full(value: str | None) -> bool:
    """Whether the ``Risk-Detail`` header asks for the full reply.

    Args:
        value: the header's value as received (None when absent).

    Raises:
        InvalidMessageError: a value other than ``full`` or ``compact`` (field ``Risk-Detail``).
    """
    if value is None or value == COMPACT:
        return False
    if value == FULL:
        return True
    raise InvalidMessageError(
        DETAIL_HEADER, "out_of_range", f"must be 'full' or 'compact', got {value[:64]!r}"
    )


def forward_headers(
    traceparent: str | None, detail: str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """The headers a request forwarded to the account's owner carries: ``extra`` (the batch
    mark), the valid ``traceparent`` and the ``Risk-Detail`` asked; None when there are none."""
    headers = dict(extra) if extra else {}
    if traceparent is not None:
        headers[TRACEPARENT] = traceparent
    if detail is not None:
        headers[DETAIL_HEADER] = detail
    return headers or None
