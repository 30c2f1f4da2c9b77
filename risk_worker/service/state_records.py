"""Audit records of trading-state transitions, with the accounts' snapshots.

The watcher hands every transition of a trading-state key to :func:`state_change_record`; the
snapshot is the account's metrics (as on ``risk.metrics``) and open positions, or a one-line
summary of every account for the global, strategy and symbol scopes.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from risk_worker.adapters.nats_service import now_ms
from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.trading_state import StateValue, parse_state_key
from risk_worker.domain.types import TradingState
from risk_worker.wire.audit import StateChangeRecord
from risk_worker.wire.numbers import finite
from risk_worker.wire.outbound import metrics_msg
from risk_worker.wire.strategies import strategies_msg


def account_snapshot(engine: RiskEngine, account_id: str, now: int) -> dict[str, Any]:
    """Metrics (as on ``risk.metrics``) and open positions of an account, JSON-ready."""
    acct = engine.book.accounts.get(account_id)
    positions = (
        []
        if acct is None
        else [
            {"symbol": p.symbol, "quantity": p.quantity, "entry_price": p.entry_price}
            for p in acct.positions.values()
            if p.quantity != 0.0
        ]
    )
    body: dict[str, Any] = {"positions": positions}
    a = engine.assess(account_id, now)
    if a is not None:
        body["metrics"] = msgspec.to_builtins(
            metrics_msg(
                account_id,
                now,
                a.metrics,
                a.utilization,
                a.risk_level,
                a.trading_state,
                strategies=strategies_msg(a.strategies),
            )
        )
    return body


def global_snapshot(engine: RiskEngine, now: int) -> dict[str, Any]:
    """A one-line summary of every known account (for global trips and clears)."""
    accounts: dict[str, Any] = {}
    for account_id in engine.known_accounts():
        a = engine.assess(account_id, now)
        if a is not None:
            m = a.metrics
            accounts[account_id] = {
                "equity": m.equity,
                "gross_exposure": m.gross_exposure,
                "leverage": finite(m.leverage),
                "drawdown_max": m.drawdown_max,
                "risk_level": a.risk_level.value,
            }
    return {"accounts": accounts}


STATE_RECORD_NAMESPACE = uuid.UUID("7a0c4c55-2f1e-4f55-9d43-6b1f4d1f2a11")
"""uuid5 namespace of state-change record ids: one id per (bucket, key, revision)."""


def state_change_record(
    engine: RiskEngine, bucket: str, key: str, value: StateValue | None, revision: int
) -> StateChangeRecord | None:
    """The audit record of a trading-state transition seen by the watcher (None: not a
    trading-state key), with the account's snapshot (an account's key, or an automatic trip of
    a strategy of an account: ``strategy`` scope with both ids; all accounts' for the global,
    strategy and symbol scopes).

    Every instance records what its watcher sees under an id derived from (bucket, key,
    revision): the stream and the table keep one row per transition.
    """
    k = parse_state_key(key)
    if k is None:
        return None
    now = now_ms()
    # an automatic trip of an account is account-scoped, of a strategy of an account
    # strategy-scoped with both ids; unknown keys act globally
    account_id = k.account_id
    state = TradingState.ACTIVE if value is None else value.state
    snapshot = (
        global_snapshot(engine, now)
        if account_id is None
        else account_snapshot(engine, account_id, now)
    )
    return StateChangeRecord(
        id=str(uuid.uuid5(STATE_RECORD_NAMESPACE, f"{bucket}/{key}/{revision}")),
        occurred_at=value.updated_at if value and value.updated_at else now,
        scope=k.scope,  # type: ignore[arg-type]  # WIRE_SCOPE's values are the Literal's
        account_id=account_id,
        strategy_id=k.strategy_id,
        symbol=k.symbol,
        action="clear" if state is TradingState.ACTIVE else "trip",
        state=state.value,
        reason="" if value is None else value.reason,
        triggered_by="" if value is None else value.updated_by,
        source="operator" if value is None else value.source.value,
        revision=revision,
        account_snapshot=snapshot,
    )
