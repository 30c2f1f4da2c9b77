"""Policies from PostgreSQL: the ``risk_policies`` table as a policy source, with LISTEN/NOTIFY.

A row the worker cannot use (an unknown metric written for a newer worker, a non-finite
threshold, ...) is skipped and logged at ERROR; the rest still load. Each write to the table
NOTIFYs ``risk_policies_changed`` (migration 0001): :meth:`PgPolicySource.listen` passes it on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import asyncpg
import tenacity
from asyncpg.pool import PoolConnectionProxy

from risk_worker.domain.policies import Policy, PolicyError, validate_policy
from risk_worker.domain.types import IDENTIFIER_PATTERN, Metric, Operator, PolicyType, Scope
from risk_worker.errors import RiskWorkerError

log = logging.getLogger("risk_worker.policies")

CHANNEL = "risk_policies_changed"
SELECT_POLICIES = """
SELECT id, name, type, metric, operator, threshold, scope, scope_id, enabled, priority, version
FROM risk_policies ORDER BY priority, name"""
RETRYABLE = (
    OSError,  # ConnectionError and TimeoutError included
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,  # the server is starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
)
"""Errors after which :meth:`PgPolicySource.listen` reconnects (with backoff)."""
LISTENER_NAME = {"application_name": "risk-worker policy listener"}
_LOST = (*RETRYABLE, asyncpg.InterfaceError, asyncpg.PostgresError)
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


class PolicyLoadError(RiskWorkerError):
    """The ``risk_policies`` table could not be read (or held no usable policy)."""


def _enum(enum: Any, row: Mapping[str, Any] | asyncpg.Record, column: str) -> Any:
    try:
        return enum(row[column])
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise PolicyError(
            f"policy {row['name']!r}: unknown {column} {row[column]!r} (expected {allowed})"
        ) from None


def policy_from_row(row: Mapping[str, Any] | asyncpg.Record) -> Policy:
    """Map one ``risk_policies`` row to a domain :class:`Policy` (id as text, threshold float).

    Args:
        row: columns id (uuid), name, type, metric, operator, threshold (numeric, the metric's
            unit), scope, scope_id, enabled, priority; extra columns are ignored.

    Raises:
        PolicyError: naming the policy and the problem: unknown type, metric, operator or scope,
            non-finite threshold (NaN, ±Infinity, or beyond the float range), or a scope_id
            that is not 1-64 characters of ``A-Z a-z 0-9 _ - / =``.
    """
    name = str(row["name"])
    scope_id = row["scope_id"]
    if scope_id is not None and not _IDENTIFIER.match(scope_id):
        raise PolicyError(f"policy {name!r}: bad scope_id {scope_id!r} (1-64 of A-Za-z0-9_-/=)")
    try:
        threshold = float(row["threshold"])
    except (TypeError, ValueError):
        raise PolicyError(f"policy {name!r}: threshold {row['threshold']!r} is no number") from None
    policy = Policy(
        id=str(row["id"]),
        name=name,
        type=_enum(PolicyType, row, "type"),
        metric=_enum(Metric, row, "metric"),
        operator=_enum(Operator, row, "operator"),
        threshold=threshold,
        scope=_enum(Scope, row, "scope"),
        scope_id=scope_id,
        enabled=bool(row["enabled"]),
        priority=int(row["priority"]),
    )
    return validate_policy(policy)


async def load_policies(conn: Conn) -> tuple[list[Policy], list[str]]:
    """Read every row of ``risk_policies`` in (priority, name) order; a bad row never raises.

    Returns:
        (the usable policies, enabled or not; one error message per skipped row).

    Raises:
        asyncpg.PostgresError, OSError: the table cannot be read (the caller maps these).
    """
    policies: list[Policy] = []
    errors: list[str] = []
    for row in await conn.fetch(SELECT_POLICIES):
        try:
            policies.append(policy_from_row(row))
        except PolicyError as exc:
            errors.append(str(exc))
    return policies, errors


class PgPolicySource:
    """The :class:`~risk_worker.service.policy_source.PolicySource` backed by PostgreSQL.

    Args:
        dsn: libpq URL of the database, e.g. ``RISK_DATABASE_URL`` (never logged: it may hold a
            password). :meth:`listen` always opens its own connection from it.
        pool: optional asyncpg pool for :meth:`load`; without one each load opens and closes a
            short connection (loads happen at start and on change only).
        connect_timeout: seconds allowed to open a connection.
        max_backoff: ceiling in seconds of the jittered exponential wait between reconnects.
        keepalive: seconds between liveness queries of the listening connection (``SELECT 1``).
    """

    name = "postgresql"

    def __init__(
        self,
        dsn: str,
        *,
        pool: asyncpg.Pool[asyncpg.Record] | None = None,
        connect_timeout: float = 5.0,
        max_backoff: float = 5.0,
        keepalive: float = 15.0,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._connect_timeout = connect_timeout
        self._max_backoff = max_backoff
        self._keepalive = keepalive

    async def load(self) -> Sequence[Policy]:
        """All usable policies (enabled or not) in (priority, name) order; each unusable row is
        skipped and logged at ERROR with its reason.

        Raises:
            PolicyLoadError: the database is unreachable, the table cannot be read, or no row
                is usable (a source never returns an empty set).
        """
        try:
            policies, errors = await self._read()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise PolicyLoadError(f"cannot read risk_policies: {exc!r}") from exc
        for error in errors:
            log.error("skipping policy row: %s", error)
        if not policies:
            raise PolicyLoadError(f"risk_policies holds no usable policy ({len(errors)} skipped)")
        return policies

    async def _read(self) -> tuple[list[Policy], list[str]]:
        if self._pool is not None:
            async with self._pool.acquire() as pooled:
                return await load_policies(pooled)
        conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
        try:
            return await load_policies(conn)
        finally:
            await conn.close(timeout=self._connect_timeout)

    async def listen(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` on every change of ``risk_policies``; runs until cancelled.

        Holds one dedicated connection LISTENing on ``risk_policies_changed``. ``on_change`` is
        also called once after each (re)connect, so a change made while disconnected is not
        missed. A lost connection is re-established with jittered exponential backoff (at most
        ``max_backoff`` s between attempts, no overall limit) on :data:`RETRYABLE` errors.

        Raises:
            PolicyLoadError: a connection is refused for a non-retryable reason (e.g. bad
                password, unknown database).
        """
        while True:
            conn = await self._connect_listening(on_change)
            try:
                self._call(on_change)
                await self._until_lost(conn)
            finally:
                with contextlib.suppress(Exception):  # close() aborts what it cannot close politely
                    await conn.close(timeout=1.0)
            log.warning("policy change listener lost its connection; reconnecting")

    async def _connect_listening(self, on_change: Callable[[], None]) -> asyncpg.Connection[Any]:
        def notified(*_: object) -> None:
            self._call(on_change)

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(RETRYABLE),
            wait=tenacity.wait_exponential_jitter(
                multiplier=0.1, max=self._max_backoff, jitter=0.5
            ),
            stop=tenacity.stop_never,
            before_sleep=_log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    conn = await asyncpg.connect(
                        self._dsn, timeout=self._connect_timeout, server_settings=LISTENER_NAME
                    )
                    try:
                        await conn.add_listener(CHANNEL, notified)
                    except BaseException:
                        conn.terminate()
                        raise
                    return conn
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise PolicyLoadError(f"cannot listen on {CHANNEL}: {exc!r}") from exc
        raise AssertionError("unreachable: tenacity retries forever or reraises")

    async def _until_lost(self, conn: asyncpg.Connection[Any]) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        while not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self._keepalive)
                return
            try:
                await conn.fetchval("SELECT 1", timeout=self._connect_timeout)
            except _LOST as exc:
                log.warning("policy change listener: liveness query failed: %r", exc)
                return

    @staticmethod
    def _call(on_change: Callable[[], None]) -> None:
        try:
            on_change()
        except Exception:
            log.exception("policy change callback failed")


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("policy listener cannot connect (attempt %d): %r", state.attempt_number, exc)
