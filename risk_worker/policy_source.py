"""Where policies come from: a small interface, with the built-in set as the first source."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

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
