"""Policies at start and while running: initial load, hot reload on change, periodic reload.

At start the source must load (else the worker refuses to start) unless the fallback to the
built-in defaults is allowed, which is said loudly. While running, a change notification
(``listen``) reloads within about a second and a periodic reload is the safety net. A reload
that fails, or would leave no policy at all, keeps the set in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.policies import PolicyError, default_policies
from risk_worker.errors import RiskWorkerError
from risk_worker.service.policy_source import PolicySource

log = logging.getLogger("risk_worker.policies")

DEBOUNCE_S = 0.05
"""Notifications within this window (a multi-row update) cause one reload."""


class PolicyUnavailableError(RiskWorkerError):
    """No policy set could be loaded at start and no fallback is allowed."""


@runtime_checkable
class ListeningPolicySource(PolicySource, Protocol):
    """A source that can say when its policies changed."""

    def listen(self, on_change: Callable[[], None]) -> Awaitable[None]:
        """Run until cancelled, calling ``on_change`` on every change (and after reconnects)."""
        ...


class PolicyReloader:
    """Keeps the engine's policy set in step with a source.

    Args:
        engine: the decision core whose policies are replaced.
        source: where the policies come from.
        interval: seconds between periodic full reloads.
    """

    def __init__(self, engine: RiskEngine, source: PolicySource, interval: float) -> None:
        self._engine = engine
        self._source = source
        self._interval = interval
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.reloads = 0
        self.failures = 0

    async def load_initial(self, fallback_to_defaults: bool) -> None:
        """Load the set the worker starts with.

        Raises:
            PolicyUnavailableError: the source failed and no fallback is allowed.
        """
        try:
            await self._load()
        except (RiskWorkerError, PolicyError, OSError) as exc:
            if not fallback_to_defaults:
                raise PolicyUnavailableError(
                    f"cannot load policies from {self._source.name}: {exc} (set "
                    "RISK_POLICY_FALLBACK=defaults to start on the built-in set)"
                ) from exc
            self._engine.load_policies(default_policies())
            log.critical(
                "POLICIES FROM %s UNAVAILABLE (%s): RUNNING ON THE %d BUILT-IN DEFAULTS "
                "(RISK_POLICY_FALLBACK=defaults); will keep retrying",
                self._source.name.upper(),
                exc,
                len(default_policies()),
            )

    def request(self) -> None:
        """Ask for a reload soon (called on a change notification)."""
        self._wake.set()

    def start(self) -> None:
        """Start the reload loop, and the source's change listener when it has one."""
        self._tasks.append(asyncio.create_task(self._loop(), name="policy-reload"))
        if isinstance(self._source, ListeningPolicySource):
            listener = asyncio.ensure_future(self._source.listen(self.request))
            listener.add_done_callback(_report_listener_end)
            self._tasks.append(listener)

    async def stop(self) -> None:
        """Stop the loop and the listener."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task  # a listener that already failed was logged when it did
        self._tasks.clear()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            await asyncio.sleep(DEBOUNCE_S)
            self._wake.clear()
            try:
                await self._load()
            except (RiskWorkerError, PolicyError, OSError) as exc:
                self.failures += 1
                current = self._engine.policies
                log.error(
                    "policy reload from %s failed; keeping the %d policies in force: %s",
                    self._source.name,
                    0 if current is None else len(current),
                    exc,
                )

    async def _load(self) -> None:
        policies = await self._source.load()
        if not policies:
            raise PolicyError(f"{self._source.name} returned no valid policy")
        before = self._engine.policies
        after = self._engine.load_policies(policies)
        self.reloads += 1
        if before is None or before.policies != after.policies:
            log.info(
                "policy set from %s: %d policies (%d enabled)",
                self._source.name,
                len(after),
                sum(p.enabled for p in after.policies),
            )


def _report_listener_end(task: asyncio.Future[None]) -> None:
    """A listener ends only by cancellation or a permanent error (e.g. bad credentials)."""
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "policy change listener stopped: %s; changes are now picked up by the "
            "periodic reload only",
            task.exception(),
        )
