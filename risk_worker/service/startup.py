"""Start-up steps that ask the JetStream API, retried while JetStream is only unavailable.

JetStream is unavailable for seconds at a time while a cluster elects a leader: an API
request times out (nats-py: 5 s) or is answered "JetStream system temporarily unavailable"
(503, error code 10008), and a stream cannot be placed while replicas are offline ("no
suitable peers for placement, peer offline", 10005). A loaded server can also answer too late.
Without a retry the first of these ended the worker at start (seen once in CI: a consumer
created on a 3-node cluster under the load of four test processes on two cores). Every other
error (no JetStream at all, a bad configuration, a permission) does not go away by asking
again and stops the process at once, in one line.

Each step retried here is idempotent: a stream is bound or created with the same
configuration, a consumer is asked for again (one whose creation timed out but happened is an
ephemeral without interest, which the server removes).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
import nats.js.errors
import tenacity

from risk_worker.errors import ServerUnavailableError

log = logging.getLogger(__name__)

STARTUP_RETRY_S = 30.0
"""Seconds a start-up step is retried for, from its first attempt (then its error ends the
start). Short enough that a supervisor's stop during start is not held long."""

TEMPORARILY_UNAVAILABLE = 10008
"""nats-server's JSClusterNotAvailErr: "JetStream system temporarily unavailable"."""
NO_SUITABLE_PEERS = 10005
"""nats-server's JSClusterNoPeersErrF; transient only when it says a peer is offline."""

T = TypeVar("T")


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or the error it wraps, e.g. a ``TradingStateError`` raised from a
    nats-py error) says JetStream is unavailable for now: a timeout (nats-py's subclass the
    built-in ``TimeoutError``), error 10008, or error 10005 naming an offline peer."""
    for e in (exc, exc.__cause__):
        if isinstance(e, TimeoutError):
            return True
        if isinstance(e, nats.js.errors.APIError) and (
            e.err_code == TEMPORARILY_UNAVAILABLE
            or (e.err_code == NO_SUITABLE_PEERS and "offline" in (e.description or ""))
        ):
            return True
    return False


def _log_retry(what: str, state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning(
        "start: %s: JetStream unavailable (attempt %d: %s); again in %.1f s",
        what,
        state.attempt_number,
        exc,
        wait,
    )


async def startup_step(
    what: str,
    step: Callable[..., Awaitable[T]],
    *args: object,
    retry_for: float = STARTUP_RETRY_S,
) -> T:
    """``await step(*args)``, again after a :func:`transient` error, with exponential backoff
    and jitter (0.2 s doubling to 2 s), until ``retry_for`` seconds have passed since the first
    attempt.

    Args:
        what: the step, for the log and the error ("the RISK_INPUTS consumer").

    Raises:
        ServerUnavailableError: a NATS error (at once when it is not transient, else the last
            one), naming ``what``.
        whatever else ``step`` raises (e.g. a ``ServerUnavailableError`` naming a setting).
    """
    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(transient),
        wait=tenacity.wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
        stop=tenacity.stop_after_delay(retry_for),
        before_sleep=lambda state: _log_retry(what, state),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await step(*args)
    except (nats.errors.Error, TimeoutError) as exc:
        again = f" (retried for {retry_for:g} s)" if transient(exc) else ""
        raise ServerUnavailableError(f"cannot set up {what}: {exc}{again}") from exc
    raise AssertionError("unreachable: tenacity returns or reraises")
