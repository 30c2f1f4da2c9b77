"""Answering the queries: ``risk.query.metrics``, ``risk.query.states``, ``risk.check.batch``.

Transport-free like :mod:`risk_worker.adapters.check_handler`: request bytes in, an answer
out, nothing awaited, so a batch is decided in one go between two awaits (atomic with respect
to other checks). Denials of a batch are recorded to the audit sink and counted exactly as
single checks are (through the check handler); error replies carry the services protocol's
error headers and a :class:`~risk_worker.wire.queries.QueryErrorMsg` body.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec

from risk_worker.adapters.check_handler import ERROR_CODE, ERROR_TEXT, CheckHandler, now_ms
from risk_worker.adapters.ratelog import RateLimitedLog
from risk_worker.domain.batch import BatchOutcome
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.order import Order, deny
from risk_worker.domain.restricted import parse_restricted_key
from risk_worker.domain.types import DenyReason, TradingState
from risk_worker.errors import InvalidMessageError
from risk_worker.wire import inbound
from risk_worker.wire.outbound import metrics_msg, reply_msg
from risk_worker.wire.queries import (
    BatchReplyMsg,
    QueryErrorMsg,
    RestrictionRowMsg,
    StateRowMsg,
    StatesReplyMsg,
    parse_batch,
    parse_metrics_query,
)
from risk_worker.wire.strategies import strategies_msg
from risk_worker.wire.trace import TRACEPARENT, log_fields

log = logging.getLogger("risk_worker.queries")


class QueryAnswer(msgspec.Struct, frozen=True, gc=False):
    """A reply to send (``headers`` and ``error`` set on error replies only), the reservations
    to announce on ``risk.reservations`` first, or the instance to forward the request to."""

    payload: bytes
    headers: dict[str, str] | None = None
    error: str | None = None
    reservations: list[bytes] = msgspec.field(default_factory=list)
    forward_to: str | None = None


class QueryHandler:
    """Turns query and batch requests into replies.

    Args:
        engine: the decision core (its book, trading states and policies).
        confirmed: whether the trading-state copy is confirmed now.
        checks: the check handler (owner routing, audit records, counters, limits).
        max_batch: ``RISK_MAX_BATCH``, the most orders of one batch.
    """

    def __init__(
        self,
        engine: RiskEngine,
        confirmed: Callable[[], bool],
        checks: CheckHandler,
        max_batch: int,
    ) -> None:
        self._engine = engine
        self._confirmed = confirmed
        self._checks = checks
        self._max_batch = max_batch
        self._encoder = msgspec.json.Encoder()
        self._ratelog = RateLimitedLog(log)

    def _error(self, code: int, error: str, message: str, field: str | None = None) -> QueryAnswer:
        body = self._encoder.encode(QueryErrorMsg(error, message, field))
        text = f"{error}: {message}"[:512]
        return QueryAnswer(body, {ERROR_CODE: str(code), ERROR_TEXT: text}, text)

    def _invalid(self, exc: InvalidMessageError) -> QueryAnswer:
        self._ratelog.warning("invalid", "invalid query: %s", exc)
        return self._error(400, DenyReason.INVALID_REQUEST.value, str(exc), exc.field)

    def metrics(self, data: bytes) -> QueryAnswer:
        """``risk.query.metrics``: the account's ``RiskMetricsMsg`` now (never raises)."""
        try:
            account_id = parse_metrics_query(data, self._checks.max_request_bytes)
        except InvalidMessageError as exc:
            return self._invalid(exc)
        now = now_ms()
        acct = self._engine.book.accounts.get(account_id)
        if acct is None or not acct.known:
            return self._error(404, "unknown_account", f"account {account_id} is not known")
        try:
            a = self._engine.assess(account_id, now)
            if a is None:  # known, so: no policy set loaded
                return self._error(
                    503, DenyReason.POLICIES_UNAVAILABLE.value, "no policy set is loaded"
                )
            msg = metrics_msg(
                account_id,
                now,
                a.metrics,
                a.utilization,
                a.risk_level,
                a.trading_state,
                self._checks.worker_id,
                strategies_msg(a.strategies),
            )
            return QueryAnswer(self._encoder.encode(msg))
        except Exception:
            log.exception("metrics query of %s failed", account_id)
            return self._error(500, DenyReason.INTERNAL_ERROR.value, "internal error")

    def states(self) -> QueryAnswer:
        """``risk.query.states``: every trading state and restriction of the confirmed copy;
        503 ``trading_state_unknown`` while the copy is not confirmed (never raises)."""
        if not self._confirmed():
            return self._error(
                503,
                DenyReason.TRADING_STATE_UNKNOWN.value,
                "this worker's copy of the trading states is not confirmed",
            )
        states = self._engine.states
        rows = [
            StateRowMsg(
                key,
                TradingState.ACTIVE if v is None else v.state,
                "" if v is None else v.reason,
                "" if v is None else v.updated_by,
                0 if v is None else v.updated_at,
                revision,
            )
            for key, v, revision in states.entries()
        ]
        restricted = states.restricted
        restrictions = []
        for key, r in restricted.entries():
            parsed = parse_restricted_key(key)
            account_id, symbol = parsed if parsed is not None else (None, key)
            restrictions.append(
                RestrictionRowMsg(
                    key, symbol, account_id, r.reason, r.by, r.at, restricted.revision(key)
                )
            )
        reply = StatesReplyMsg(True, rows, restrictions, self._checks.worker_id)
        return QueryAnswer(self._encoder.encode(reply))

    def batch(
        self,
        data: bytes,
        may_forward: bool = True,
        traceparent: str | None = None,
        detail: str | None = None,
    ) -> QueryAnswer:
        """``risk.check.batch``: decide the orders in order, or say where to forward them
        (the account's owner); never raises. ``may_forward`` is False for a forwarded one.
        ``traceparent``: the request's valid W3C one, echoed in the reply headers and kept in
        the denials' log lines and violation records. ``detail``: its ``Risk-Detail`` header
        as received; an approval carries its post-trade metrics only when asked ``full``."""
        answer = self._batch(data, may_forward, traceparent, detail)
        if traceparent is None or answer.forward_to is not None:
            return answer
        headers = {**(answer.headers or {}), TRACEPARENT: traceparent}
        return msgspec.structs.replace(answer, headers=headers)

    def _batch(
        self, data: bytes, may_forward: bool, traceparent: str | None, detail: str | None
    ) -> QueryAnswer:
        started = time.perf_counter_ns()
        checks = self._checks
        try:
            request = parse_batch(data, checks.max_request_bytes, self._max_batch, detail)
        except InvalidMessageError as exc:
            return self._invalid(exc)
        orders, all_or_none = request.orders, request.all_or_none
        if may_forward:
            owner = checks.forward_target(orders[0].account_id)
            if owner is not None:
                checks.forwarded()
                return QueryAnswer(b"", forward_to=owner)
        now = now_ms()
        outcome = self._decide(orders, now, all_or_none, traceparent)
        worker_id = checks.worker_id
        elapsed_us = (time.perf_counter_ns() - started) // 1000
        seconds = elapsed_us / 1e6 / len(orders)
        replies = []
        reservations = []
        for order, decision, full in zip(orders, outcome.decisions, request.full, strict=True):
            account_id = order.account_id
            if decision.reason is not None:
                checks.record_denial(order, decision, now, traceparent)
            r = decision.reservation
            if r is not None and decision.approved:
                reservations.append(
                    self._encoder.encode(inbound.reservation_msg(worker_id, account_id, r))
                )
            replies.append(
                reply_msg(order.order_id, account_id, decision, now, elapsed_us, worker_id, full)
            )
            checks.checked(decision, seconds)
        reply = BatchReplyMsg(replies, outcome.approved, worker_id)
        return QueryAnswer(self._encoder.encode(reply), reservations=reservations)

    def _decide(
        self, orders: list[Order], now: int, all_or_none: bool, traceparent: str | None
    ) -> BatchOutcome:
        try:
            return self._engine.check_batch(orders, now, self._confirmed(), all_or_none)
        except Exception:
            log.exception(
                "batch of %d orders of %s failed; denying",
                len(orders),
                orders[0].account_id,
                extra=log_fields(traceparent),
            )
            denial = deny(DenyReason.INTERNAL_ERROR, "internal error in the decision; denied")
            return BatchOutcome([denial] * len(orders), False)
