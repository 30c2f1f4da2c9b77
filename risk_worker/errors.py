"""The project's exceptions, in one hierarchy.

Library exceptions (nats, msgspec) are mapped to these at the boundary with ``raise ... from``.
"""

from __future__ import annotations


class RiskWorkerError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(RiskWorkerError):
    """A setting is missing or invalid; the message names the environment variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class InvalidMessageError(RiskWorkerError):
    """A wire message that cannot be accepted.

    Attributes:
        field: the offending field (``$`` for the whole message).
        reason: a short code for counting: malformed_json, missing_field, wrong_type,
            out_of_range, non_finite, bad_identifier, too_large.
        detail: a human sentence.
    """

    def __init__(self, field: str, reason: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.reason = reason
        self.detail = detail


class TradingStateError(RiskWorkerError):
    """The trading-state bucket could not be read or written."""


class StaleRevisionError(TradingStateError):
    """A compare-and-set on a trading state found a newer revision than the one read."""


class ServerUnavailableError(RiskWorkerError):
    """NATS (or another server) could not be reached within the allowed time."""
