"""What an operator does over NATS: trip and clear stops, read states, tail (checks go
through :mod:`risk_worker.client`).

natscli cannot be installed on every machine, so the CLI covers these; each function here is
one operator action, the CLI only parses arguments and prints.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from risk_worker.adapters.kv_bucket import (
    bucket_keys,
    clear_state,
    open_bucket,
    read_live_state,
    read_state,
    write_state,
)
from risk_worker.adapters.nats_auth import NatsAuth, open_connection
from risk_worker.domain.trading_state import (
    GLOBAL_KEY,
    STATE_KEY_PREFIX,
    StateValue,
    account_key,
    auto_key,
    auto_strategy_key,
    parse_state_key,
    strategy_key,
    symbol_key,
)
from risk_worker.domain.types import StateSource, TradingState
from risk_worker.errors import StaleRevisionError
from risk_worker.wire.outbound import StateChangeMsg

EMERGENCY_SUBJECT = "risk.alerts.emergency"
_ENCODER = msgspec.json.Encoder()


PING_INTERVAL_S = 5.0
"""Ping period of an operator connection (seconds): two pings unanswered (a silent network)
end it like a closed socket does, within about 15 s."""


async def connect(
    url: str,
    connect_timeout: float = 3.0,
    auth: NatsAuth | None = None,
    on_closed: Callable[[], Awaitable[None]] | None = None,
) -> Client:
    """A short-lived operator connection (no reconnects: a lost server ends it), with the
    ``RISK_NATS_*`` credentials when given.

    Args:
        on_closed: awaited when the connection ends, lost or closed by the caller.

    Raises:
        NatsAuthError: the server refused the credentials (a clear message).
        OSError, nats.errors.Error: no server answered at ``url``.
    """
    return await open_connection(
        url,
        auth or NatsAuth(),
        connect_timeout=connect_timeout,
        max_reconnect_attempts=1,
        allow_reconnect=False,
        ping_interval=PING_INTERVAL_S,
        max_outstanding_pings=2,
        closed_cb=on_closed,
        name="risk-worker cli",
    )


def with_timestamp(body: str) -> bytes:
    """A JSON object's bytes with ``timestamp`` (ms since epoch) set to now when absent.

    Raises:
        ValueError: the body is not a JSON object.
    """
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise ValueError("expected a JSON object")
    decoded.setdefault("timestamp", time.time_ns() // 1_000_000)
    return _ENCODER.encode(decoded)


def state_key(
    account_id: str | None = None, strategy_id: str | None = None, symbol: str | None = None
) -> str:
    """The operators' trading-state key of one scope: an account's, a strategy's, a symbol's
    (the first given), else the global one."""
    if account_id is not None:
        return account_key(account_id)
    if strategy_id is not None:
        return strategy_key(strategy_id)
    return GLOBAL_KEY if symbol is None else symbol_key(symbol)


async def trip(
    nc: Client,
    bucket: str,
    state: TradingState,
    reason: str,
    by: str,
    account_id: str | None,
    strategy_id: str | None = None,
    symbol: str | None = None,
) -> int:
    """Set HALTED or REDUCING on the global scope or one account, strategy or symbol (the
    first given of them); returns the new revision. A HALT makes the workers release the
    scope's reservations and publish ``risk.commands.cancel_all``."""
    kv = await open_bucket(nc.jetstream(), bucket)
    now = time.time_ns() // 1_000_000
    value = StateValue(state, reason, by, now, StateSource.OPERATOR)
    key = state_key(account_id, strategy_id, symbol)
    revision = await write_state(kv, key, value)
    kind = "emergency_stop" if state is TradingState.HALTED else "state_change"
    await _announce(nc, kind, key, value)
    return revision


async def clear(
    nc: Client,
    bucket: str,
    reason: str,
    by: str,
    account_id: str | None,
    revision: int | None = None,
    auto_revision: int | None = None,
    strategy_id: str | None = None,
    symbol: str | None = None,
) -> dict[str, int | None]:
    """Set ACTIVE, compare-and-set on the revision read now (or the one given), on the global
    key, a strategy's or a symbol's, on both keys of an account (the operators' and the
    workers' automatic one), or, with an account and a strategy, on the workers' automatic trip
    of that strategy on that account (``trading_state.auto.<account>.strategy.<strategy>``).

    Args:
        revision: clear the operators' key of the scope only if still at this revision.
        auto_revision: the same for the account's automatic key, or the automatic key of the
            strategy on the account.

    Returns:
        key → its new revision, or None when it was already ACTIVE (nothing written).

    Raises:
        ValueError: ``revision`` with an account and a strategy (no operators' key there).
        StaleRevisionError: a key changed after its revision (a newer trip stays); the message
            says which keys were cleared nonetheless.
    """
    if account_id is not None and strategy_id is not None:
        if revision is not None:
            raise ValueError("a strategy of an account has only an automatic key: --auto-revision")
        wanted = [(auto_strategy_key(account_id, strategy_id), auto_revision)]
    else:
        wanted = [(state_key(account_id, strategy_id, symbol), revision)]
        if account_id is not None:
            wanted.append((auto_key(account_id), auto_revision))
    kv = await open_bucket(nc.jetstream(), bucket)
    now = time.time_ns() // 1_000_000
    value = StateValue(TradingState.ACTIVE, reason, by, now, StateSource.OPERATOR)
    done: dict[str, int | None] = {}
    stale: list[str] = []
    for key, expected in wanted:
        current, current_revision = await read_state(kv, key)
        if current is None and expected is None:
            done[key] = None
            continue
        try:
            done[key] = await clear_state(
                kv, key, value, current_revision if expected is None else expected
            )
        except StaleRevisionError as exc:
            stale.append(str(exc))
            continue
        await _announce(nc, "emergency_clear", key, value)
    if stale:
        cleared = [k for k, r in done.items() if r is not None]
        raise StaleRevisionError(
            "; ".join(stale) + (f" (cleared nonetheless: {', '.join(cleared)})" if cleared else "")
        )
    return done


async def _announce(nc: Client, kind: str, key: str, value: StateValue) -> None:
    k = parse_state_key(key)
    assert k is not None
    message = StateChangeMsg(
        level="emergency",
        type=kind,
        scope=k.scope,
        account_id=k.account_id,
        state=value.state,
        reason=value.reason,
        triggered_by=value.updated_by,
        timestamp=value.updated_at,
        source=value.source.value,
        strategy_id=k.strategy_id,
        symbol=k.symbol,
    )
    await nc.publish(EMERGENCY_SUBJECT, _ENCODER.encode(message))
    await nc.flush()


async def states(
    nc: Client,
    bucket: str,
    account_id: str | None,
    strategy_id: str | None = None,
    symbol: str | None = None,
) -> list[tuple[str, StateValue | None, int]]:
    """(key, value or None for ACTIVE, revision) of the global scope and one account (its
    operators' key ``trading_state.account.<id>``, the workers' automatic one
    ``trading_state.auto.<id>`` and the automatic trips of its strategies
    ``trading_state.auto.<id>.strategy.<strategy>``), one strategy or one symbol; with an
    account and a strategy, every key that stops the strategy's orders on the account; with
    none of them, every trading-state key (accounts, strategies, symbols, and any unknown key:
    it acts globally)."""
    kv = await open_bucket(nc.jetstream(), bucket)
    if account_id is not None and strategy_id is not None:
        keys = [
            GLOBAL_KEY,
            account_key(account_id),
            auto_key(account_id),
            strategy_key(strategy_id),
            auto_strategy_key(account_id, strategy_id),
        ]
        found: list[str] = []
    elif account_id is not None:
        keys = [GLOBAL_KEY, account_key(account_id), auto_key(account_id)]
        found = await bucket_keys(nc, bucket, auto_strategy_key(account_id, ""))
    elif strategy_id is not None or symbol is not None:
        keys, found = [GLOBAL_KEY, state_key(None, strategy_id, symbol)], []
    else:
        keys = [GLOBAL_KEY]
        found = [k for k in await bucket_keys(nc, bucket, STATE_KEY_PREFIX) if k != GLOBAL_KEY]
    out = []
    for key in keys:
        value, revision = await read_state(kv, key)
        out.append((key, value, revision))
    for key in found:  # listed keys: only those that hold a value, as the listing promises
        live = await read_live_state(kv, key)
        if live is not None:
            out.append((key, *live))
    return out


async def discover(nc: Client, name: str, wait: float = 0.5) -> list[dict[str, Any]]:
    """Every running instance of service ``name``: its ``$SRV.INFO`` merged with its
    ``$SRV.STATS`` (what ``nats micro ls`` and ``nats micro stats`` show).

    Collects the PING answers that arrive within ``wait`` seconds, then asks each instance.
    """
    inbox = nc.new_inbox()
    answers: list[dict[str, Any]] = []

    async def collect(msg: Msg) -> None:
        answers.append(msgspec.json.decode(msg.data))

    sub = await nc.subscribe(inbox, cb=collect)
    try:
        await nc.publish(f"$SRV.INFO.{name}", b"", reply=inbox)
        await nc.flush()
        await asyncio.sleep(wait)
    finally:
        await sub.unsubscribe()
    instances = []
    for info in sorted(answers, key=lambda a: str(a.get("id"))):
        try:
            reply = await nc.request(f"$SRV.STATS.{name}.{info['id']}", b"", timeout=wait)
            stats = msgspec.json.decode(reply.data)
        except (nats.errors.Error, TimeoutError):
            stats = {}
        instances.append({**info, "stats": stats})
    return instances


def account_of(msg: Msg) -> str | None:
    """The ``account_id`` a message is about, when it has one (for ``tail --account``)."""
    try:
        body = msgspec.json.decode(msg.data)
    except msgspec.DecodeError:
        return None
    if not isinstance(body, dict):
        return None
    account = body.get("account_id", body.get("account"))
    return account if isinstance(account, str) else None


def render(msg: Msg) -> str:
    """One readable line for a message seen by ``tail``."""
    try:
        body = msgspec.json.decode(msg.data)
    except msgspec.DecodeError:
        return f"{msg.subject} {msg.data[:200]!r}"
    if not isinstance(body, dict):
        return f"{msg.subject} {body!r}"
    renderer = _RENDERERS.get(msg.subject.split(".")[1] if "." in msg.subject else "")
    text = renderer(body) if renderer else msgspec.json.encode(body).decode()
    return f"{msg.subject} {text}"


def _fmt(x: object, spec: str = ".4g") -> str:
    return "∞" if x is None else format(x, spec) if isinstance(x, int | float) else str(x)


def _metrics_line(b: dict[str, Any]) -> str:
    return (
        f"{b.get('account_id')} equity={_fmt(b.get('equity'), ',.2f')} "
        f"lev={_fmt(b.get('leverage'))} dd_daily={_fmt(b.get('drawdown_daily'))} "
        f"dd_max={_fmt(b.get('drawdown_max'))} margin_ratio={_fmt(b.get('margin_ratio'))} "
        f"level={b.get('risk_level')} state={b.get('trading_state')}"
        f"{' STALE' if b.get('stale_marks') else ''}"
    )


def _alert_line(b: dict[str, Any]) -> str:
    if b.get("type") == "suspect_tick":
        return f"[{b.get('level')}] {b.get('symbol')} {b.get('message')}"
    if b.get("type", "policy_violation") != "policy_violation":
        ident = b.get("strategy_id") or b.get("account_id") or b.get("symbol")
        who = f"{b.get('scope')} {ident}" if ident else "global"
        if b.get("strategy_id") and b.get("account_id"):  # a strategy's trip on one account
            who += f" of account {b.get('account_id')}"
        return (
            f"[{b.get('type')}] {who} → {b.get('state')} by {b.get('triggered_by')}"
            f" ({b.get('source')}): {b.get('reason')}"
        )
    strategy = f" strategy {b['strategy_id']}" if b.get("strategy_id") else ""
    return f"[{b.get('level')}] {b.get('account_id')}{strategy} {b.get('message')}"


_RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "metrics": _metrics_line,
    "alerts": _alert_line,
}
