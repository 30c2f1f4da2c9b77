"""Where audit records go: violations and trading-state changes, behind a small interface.

The check path and the monitor hand records to a :class:`RiskEventSink` and never wait for it:
``record`` must return at once (an implementation queues, it does not write inline). The records
have the shape of the audit tables (``risk_violations``, ``emergency_stops``), so a durable sink
slots in without touching the callers. :class:`LogEventSink` writes one structured log line per
record: the audit trail when no durable sink is configured.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal, Protocol

import msgspec

from risk_worker.domain.policies import Evaluation
from risk_worker.wire.numbers import finite

log = logging.getLogger("risk_worker.audit")


class ViolationRecord(msgspec.Struct, frozen=True, gc=False):
    """One policy violation: denied pre-trade, or alerted/halted by the monitor.

    ``occurred_at`` ms since epoch; values in the metric's unit (null when infinite).
    """

    id: str
    occurred_at: int
    account_id: str
    policy_id: str
    policy_name: str
    policy_type: str
    metric: str
    metric_value: float | None
    threshold_value: float
    source: Literal["pre_trade", "monitor"]
    action_taken: Literal["denied", "alerted", "halted"]
    order_id: str | None = None
    symbol: str | None = None
    rejection_reason: str | None = None
    """The check's ``rejection_reason`` (pre-trade denials): ``policy_violation`` or the
    order-level control's code, e.g. ``price_out_of_collar``."""
    strategy_id: str | None = None
    """The strategy: the order's (pre-trade), or the one a strategy-scoped policy was
    evaluated on (monitor)."""
    traceparent: str | None = None
    """The W3C ``traceparent`` the check request carried (pre-trade; ``wire.trace``)."""


class StateChangeRecord(msgspec.Struct, frozen=True, gc=False):
    """A trip or clear of a trading state, with the account's metrics at that moment."""

    id: str
    occurred_at: int
    scope: Literal["global", "account", "strategy", "symbol"]
    account_id: str | None
    action: Literal["trip", "clear"]
    state: str
    reason: str
    triggered_by: str
    source: str
    revision: int | None = None
    account_snapshot: dict[str, Any] | None = None
    strategy_id: str | None = None
    symbol: str | None = None


def violation_record(
    ev: Evaluation,
    account_id: str,
    now_ms: int,
    source: Literal["pre_trade", "monitor"],
    action: Literal["denied", "alerted", "halted"],
    order_id: str | None = None,
    rejection_reason: str | None = None,
    strategy_id: str | None = None,
    traceparent: str | None = None,
) -> ViolationRecord:
    """Build a violation record from an evaluation (a fresh uuid4 id)."""
    p = ev.policy
    return ViolationRecord(
        id=str(uuid.uuid4()),
        occurred_at=now_ms,
        account_id=account_id,
        policy_id=p.id,
        policy_name=p.name,
        policy_type=p.type.value,
        metric=p.metric.value,
        metric_value=finite(ev.value),
        threshold_value=p.threshold,
        source=source,
        action_taken=action,
        order_id=order_id,
        symbol=ev.symbol,
        rejection_reason=rejection_reason,
        strategy_id=strategy_id,
        traceparent=traceparent,
    )


DUPLICATE_ORDER_POLICY_ID = "duplicate_order_id"
"""``policy_id`` of a duplicate-order denial's record: an always-on control, not a policy."""
RESTRICTED_POLICY_NAME = "Restricted Instrument"
RESTRICTED_METRIC = "restricted_symbol"


def control_record(
    account_id: str,
    now_ms: int,
    order_id: str,
    symbol: str,
    control: tuple[str, str, str],
    rejection_reason: str,
) -> ViolationRecord:
    """The pre-trade violation of an order denied by a control that is not a policy (a fresh
    uuid4 id): ``control`` is (policy_id, policy_name, metric); hard; value 1 against limit 0
    (subjects.md §3.11)."""
    policy_id, policy_name, metric = control
    return ViolationRecord(
        id=str(uuid.uuid4()),
        occurred_at=now_ms,
        account_id=account_id,
        policy_id=policy_id,
        policy_name=policy_name,
        policy_type="hard",
        metric=metric,
        metric_value=1.0,
        threshold_value=0.0,
        source="pre_trade",
        action_taken="denied",
        order_id=order_id,
        symbol=symbol,
        rejection_reason=rejection_reason,
    )


def duplicate_order_record(
    account_id: str, now_ms: int, order_id: str, symbol: str
) -> ViolationRecord:
    """The record of a ``duplicate_order_id`` denial: control "Duplicate Order Id", metric
    ``order_id``, value 1 (the live reservation with that id), limit 0."""
    control = (DUPLICATE_ORDER_POLICY_ID, "Duplicate Order Id", "order_id")
    return control_record(account_id, now_ms, order_id, symbol, control, "duplicate_order_id")


def restricted_record(
    account_id: str, order_id: str, symbol: str, key: str, now_ms: int
) -> ViolationRecord:
    """The record of a ``restricted_symbol`` denial. The restriction stands in for a policy:
    ``policy_id`` is its KV key (``restricted.<symbol>`` or
    ``restricted.account.<id>.<symbol>``), ``metric`` ``restricted_symbol`` with value 1 (on the
    list) against threshold 0."""
    control = (key, RESTRICTED_POLICY_NAME, RESTRICTED_METRIC)
    return control_record(account_id, now_ms, order_id, symbol, control, "restricted_symbol")


class RiskEventSink(Protocol):
    """Receives audit records; ``record`` never blocks and never raises."""

    def record(self, record: ViolationRecord | StateChangeRecord) -> None:
        """Accept one record for keeping."""
        ...


class LogEventSink:
    """Writes each record as one JSON log line on the ``risk_worker.audit`` logger."""

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()

    def record(self, record: ViolationRecord | StateChangeRecord) -> None:
        """Log the record (INFO)."""
        kind = "violation" if isinstance(record, ViolationRecord) else "state_change"
        log.info("%s %s", kind, self._encoder.encode(record).decode())
