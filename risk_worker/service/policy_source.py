"""Where policies come from: a small interface, the built-in set, and a TOML policy file.

PostgreSQL (:mod:`risk_worker.adapters.pg_policies`) is the source in production; a worker
without a database serves the built-in defaults, or the file ``RISK_POLICY_FILE`` names.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from risk_worker.adapters.policy_admin import PolicySpec, parse_policy_file
from risk_worker.domain.policies import Policy, default_policies


class PolicySource(Protocol):
    """Loads the full policy set. A source that cannot load raises; it never returns []."""

    name: str

    async def load(self) -> Sequence[Policy]:
        """The current policies (enabled or not)."""
        ...


class StaticPolicySource:
    """A fixed list of policies: the built-in defaults unless others are given."""

    def __init__(self, policies: Sequence[Policy] | None = None, name: str = "built-in") -> None:
        self._policies = tuple(default_policies() if policies is None else policies)
        self.name = name

    async def load(self) -> Sequence[Policy]:
        """The fixed list."""
        return self._policies


def policy_id(name: str) -> str:
    """Stable id of a policy known by name only: uuid5(NAMESPACE_URL, "risk-worker/policy/<name>").

    The built-in defaults carry ids made the same way, so a file that redeclares one keeps its id.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"risk-worker/policy/{name}"))


def spec_policy(spec: PolicySpec) -> Policy:
    """The domain policy a file's ``[[policy]]`` table declares (id from :func:`policy_id`)."""
    return Policy(
        policy_id(spec.name),
        spec.name,
        spec.type,
        spec.metric,
        spec.operator,
        spec.threshold,
        spec.scope,
        spec.scope_id,
        spec.enabled,
        spec.priority,
    )


class FilePolicySource:
    """Policies from a TOML file, read on every load.

    The format is :mod:`risk_worker.adapters.policy_admin`'s (``policies apply``).

    For a worker without PostgreSQL (``RISK_POLICY_FILE``): edits are picked up at the next
    reload (``RISK_POLICY_RELOAD_INTERVAL``). A file that cannot be read or parsed raises
    :class:`~risk_worker.adapters.policy_admin.PolicyFileError`, so the set in force stays (or, at
    start, the worker refuses to run unless ``RISK_POLICY_FALLBACK=defaults``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = f"file {path}"

    async def load(self) -> Sequence[Policy]:
        """Parse the file (in a thread: it is disk I/O) and convert every table."""
        specs = await asyncio.to_thread(parse_policy_file, self.path)
        return [spec_policy(spec) for spec in specs]
