"""The channels of the wire contract (subjects.md §2) as data, for the AsyncAPI document.

One :class:`Channel` per row of the subject table: its NATS subject (``{param}`` for a token the
table writes ``<param>``), what the worker does with it (``receive`` or ``send``; both for the two
subjects the instances also hear from each other), the messages it carries, the reply messages of
a request, the queue group and the JetStream stream. ``tests/unit/test_contract_files.py`` checks
this table against subjects.md §2 and the subjects and queue group the adapters use.
"""

from __future__ import annotations

from dataclasses import dataclass

QUEUE_GROUP = "risk-workers"
"""The queue group of the request subjects (any one instance answers)."""
EVENTS_STREAM = "RISK_EVENTS"
"""The JetStream stream of ``risk.events.>`` (the audit trail, subjects.md §10)."""

STATES_QUERY = "StatesQuery"
"""The message name of a ``risk.query.states`` request: any body, ignored (no Struct)."""
VAR_RELOAD = "VarReload"
"""The message name of ``risk.control.var.reload``: an empty body (no Struct)."""


@dataclass(frozen=True)
class Channel:
    """One subject of the contract, from the worker's point of view.

    Attributes:
        key: the channel's id in the document (camelCase).
        address: the NATS subject; ``{name}`` marks a token that varies (a parameter).
        actions: ``receive`` (the worker subscribes) and/or ``send`` (the worker publishes).
        messages: message names (Struct names, or :data:`STATES_QUERY`/:data:`VAR_RELOAD`).
        replies: the reply messages of a request/reply subject; empty for pub/sub.
        queue: the queue group, or None when every instance receives every message.
        stream: the JetStream stream the subject is stored in, or None for plain NATS.
        summary: one sentence for readers.
    """

    key: str
    address: str
    actions: tuple[str, ...]
    messages: tuple[str, ...]
    summary: str
    replies: tuple[str, ...] = ()
    queue: str | None = None
    stream: str | None = None


def _request(
    key: str, address: str, request: str, replies: tuple[str, ...], summary: str
) -> Channel:
    return Channel(key, address, ("receive",), (request,), summary, replies, QUEUE_GROUP)


CHANNELS: tuple[Channel, ...] = (
    _request(
        "checkOrder",
        "risk.check.order",
        "CheckRequestMsg",
        ("CheckReplyMsg",),
        "Pre-trade check of one order. No reply, no responders or a timeout means DENIED.",
    ),
    _request(
        "checkBatch",
        "risk.check.batch",
        "BatchRequestMsg",
        ("BatchReplyMsg", "QueryErrorMsg"),
        "1 to RISK_MAX_BATCH orders of one account, decided in order.",
    ),
    _request(
        "queryMetrics",
        "risk.query.metrics",
        "MetricsQueryMsg",
        ("RiskMetricsMsg", "QueryErrorMsg"),
        "The account's risk metrics now.",
    ),
    _request(
        "queryStates",
        "risk.query.states",
        STATES_QUERY,
        ("StatesReplyMsg", "QueryErrorMsg"),
        "Every trading state and restricted-list entry of the instance's confirmed copy.",
    ),
    Channel(
        "positionsUpdate",
        "positions.update",
        ("receive",),
        ("PositionUpdateMsg",),
        "The full state of one position (every instance).",
    ),
    Channel("fillsConfirmed", "fills.confirmed", ("receive",), ("FillMsg",), "One execution."),
    Channel(
        "marketTick",
        "market.tick.{symbol}",
        ("receive",),
        ("TickMsg",),
        "The latest price of a symbol; the subject's last token is the symbol.",
    ),
    Channel("pnlUpdate", "pnl.update", ("receive",), ("PnlUpdateMsg",), "The account's balance."),
    Channel(
        "varReload",
        "risk.control.var.reload",
        ("receive",),
        (VAR_RELOAD,),
        "Merge the VaR samples stored in Redis (published by risk-worker var seed).",
    ),
    Channel(
        "riskMetrics",
        "risk.metrics",
        ("send",),
        ("RiskMetricsMsg",),
        "An account's metrics when they moved beyond RISK_METRICS_CHANGE_THRESHOLD, and at "
        "least every RISK_METRICS_MAX_INTERVAL; the current figures: risk.query.metrics.",
    ),
    Channel(
        "alertsWarning",
        "risk.alerts.warning",
        ("send",),
        ("AlertMsg",),
        "Soft policy violations and suspect ticks.",
    ),
    Channel(
        "alertsCritical",
        "risk.alerts.critical",
        ("send",),
        ("AlertMsg",),
        "Hard policy violations.",
    ),
    Channel(
        "alertsEmergency",
        "risk.alerts.emergency",
        ("send",),
        ("AlertMsg", "StateChangeMsg"),
        "Emergency policy violations and trading-state transitions (told apart by type).",
    ),
    Channel(
        "reservations",
        "risk.reservations",
        ("send", "receive"),
        ("ReservationBatchMsg", "ReservationMsg"),
        "Headroom an instance reserved for the orders it approved, one batch per run of"
        " requests; the other instances apply it.",
    ),
    Channel(
        "cancelAll",
        "risk.commands.cancel_all",
        ("send", "receive"),
        ("CancelAllMsg",),
        "A trading state went HALTED: the OMS cancels the working orders of that scope.",
    ),
    Channel(
        "eventsViolation",
        "risk.events.violation.{account_id}",
        ("send",),
        ("ViolationRecord",),
        "Audit trail: one policy violation.",
        stream=EVENTS_STREAM,
    ),
    Channel(
        "eventsEmergency",
        "risk.events.emergency.{scope}",
        ("send",),
        ("StateChangeRecord",),
        "Audit trail: one trading-state transition.",
        stream=EVENTS_STREAM,
    ),
)
"""Every subject of subjects.md §2, in its order."""

PARAMETERS: dict[str, dict[str, object]] = {
    "symbol": {"description": "The symbol (an identifier: 1-64 of A-Z a-z 0-9 _ - / =)."},
    "account_id": {"description": "The account of the violation (an identifier)."},
    "scope": {
        "description": "The scope of the trading state.",
        "enum": ["account", "global", "strategy", "symbol"],
    },
}
"""The subject tokens that vary, by name (AsyncAPI parameter objects)."""

ERROR_HEADERS = ("Nats-Service-Error-Code", "Nats-Service-Error")
"""The NATS services protocol's error headers (subjects.md §5)."""
MSG_ID_HEADER = "Nats-Msg-Id"
"""JetStream's de-duplication header; the record's ``id`` (subjects.md §10)."""
ERROR_STATUS = {
    "invalid_request": "400",
    "unknown_account": "404",
    "internal_error": "500",
    "policies_unavailable": "503",
    "trading_state_unknown": "503",
}
"""``QueryErrorMsg.error`` → its ``Nats-Service-Error-Code`` (subjects.md §5)."""
