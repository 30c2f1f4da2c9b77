"""The typed Python client of the risk service, for an OMS or a strategy: ``RiskClient``.

``RiskClient.connect(url, ...)`` then ``await client.check(order)`` → a :class:`Decision`.
It encodes the client rule of subjects.md §6 in code: no reply, no responders, a timeout or a
reply it cannot decode is a *denied* decision with a client-side reason (``no_reply``,
``no_responders``, ``timeout``, ``bad_reply``), never an exception; it approves only on
``"approved": true`` in a reply that decodes as a ``CheckReplyMsg``. ``decision`` holds the
types and the decoding (pure, no I/O), ``client`` the NATS side.

May import: ``risk_worker.wire`` (the contract's Structs), ``risk_worker.domain`` (their
enums), ``risk_worker.errors`` and, of the adapters, only ``risk_worker.adapters.nats_auth``
(connecting with the same credentials as the CLI). Never the service, the worker's other
adapters, the CLI, the dev stack or the bench. The CLI may import it.
"""

from risk_worker.client.client import QueryError, RiskClient
from risk_worker.client.decision import (
    BAD_REPLY,
    CLIENT_REASONS,
    NO_REPLY,
    NO_RESPONDERS,
    SERVICE_ERROR,
    TIMEOUT,
    BatchDecision,
    CheckOrder,
    Decision,
)

__all__ = [
    "BAD_REPLY",
    "CLIENT_REASONS",
    "NO_REPLY",
    "NO_RESPONDERS",
    "SERVICE_ERROR",
    "TIMEOUT",
    "BatchDecision",
    "CheckOrder",
    "Decision",
    "QueryError",
    "RiskClient",
]
