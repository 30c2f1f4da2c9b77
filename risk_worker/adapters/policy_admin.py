"""Declarative policy files: parse TOML, diff with the table by name, apply (never deletes).

One ``[[policy]]`` table per policy; the first five keys are required, defaults in brackets::

    [[policy]]
    name = "BTC Position Cap"      # the key matched against the table
    type = "hard"                  # hard, soft, emergency
    metric = "position_notional"   # a metric of subjects.md §8
    operator = "lte"               # lt, lte, gt, gte
    threshold = 500000             # finite, in the metric's unit
    scope = "symbol"               # [account], symbol, strategy
    scope_id = "BTCUSDT"           # [every account/symbol/strategy]
    enabled = true                 # [true]
    priority = 50                  # [100]
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import msgspec

from risk_worker.adapters.pg_policies import SELECT_POLICIES, Conn
from risk_worker.domain.policies import Policy, PolicyError, validate_policy
from risk_worker.domain.types import IDENTIFIER_PATTERN, Metric, Operator, PolicyType, Scope
from risk_worker.errors import RiskWorkerError

FIELDS = ("type", "metric", "operator", "threshold", "scope", "scope_id", "enabled", "priority")
_INSERT = """INSERT INTO risk_policies
    (name, type, metric, operator, threshold, scope, scope_id, enabled, priority)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"""
_UPDATE = """UPDATE risk_policies SET type = $2, metric = $3, operator = $4, threshold = $5,
    scope = $6, scope_id = $7, enabled = $8, priority = $9
WHERE name = $1 AND version = $10"""
_DISABLE = """WITH written AS (
    UPDATE risk_policies SET enabled = false WHERE name = $1 AND enabled RETURNING 1)
SELECT EXISTS (SELECT 1 FROM risk_policies WHERE name = $1)"""


class PolicyFileError(RiskWorkerError):
    """A policy file that cannot be applied; the message names the file, policy and problem."""

    def __init__(self, file: Path, policy: str | None, problem: str) -> None:
        super().__init__(f"{file}: {f'policy {policy}: ' if policy else ''}{problem}")
        self.file = file
        self.policy = policy
        self.problem = problem


class PolicyConflictError(RiskWorkerError):
    """A policy changed in the table since it was read; :func:`apply` wrote nothing."""

    def __init__(self, name: str) -> None:
        super().__init__(f"policy {name!r} changed since it was read; nothing was written")
        self.name = name


class PolicySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A policy as declared in a file: a domain Policy without id; constraints checked on parse."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    type: PolicyType
    metric: Metric
    operator: Operator
    threshold: float
    scope: Scope = Scope.ACCOUNT
    scope_id: Annotated[str, msgspec.Meta(pattern=IDENTIFIER_PATTERN)] | None = None
    enabled: bool = True
    priority: Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)] = 100


class StoredPolicy(msgspec.Struct, frozen=True):
    """A row of ``risk_policies``: the spec's fields plus id and version (optimistic locking).

    Enum columns stay text: a row with a metric this version does not know is still listed.
    """

    id: str
    version: int
    name: str
    type: str
    metric: str
    operator: str
    threshold: float
    scope: str
    scope_id: str | None
    enabled: bool
    priority: int


class PolicyChange(msgspec.Struct, frozen=True):
    """A policy present in both; fields: (field, stored value, file value) for each difference."""

    stored: StoredPolicy
    desired: PolicySpec
    fields: tuple[tuple[str, Any, Any], ...]


class PolicyDiff(msgspec.Struct, frozen=True):
    """What applying a file would do, matched by name (file order; untouched by table order)."""

    added: tuple[PolicySpec, ...]
    changed: tuple[PolicyChange, ...]
    unchanged: tuple[StoredPolicy, ...]
    untouched: tuple[StoredPolicy, ...]

    @property
    def writes(self) -> int:
        """Rows :func:`apply` would write."""
        return len(self.added) + len(self.changed)


def parse_policy_file(path: Path) -> list[PolicySpec]:
    """Read a TOML policy file (format in the module docstring), in file order.

    Raises:
        PolicyFileError: unreadable file or invalid TOML; no ``[[policy]]`` table; a policy with
            an unknown or missing key, a bad type/metric/operator/scope, a non-finite or
            non-numeric threshold, a bad scope_id, a strategy scope on a metric a strategy has
            not (:func:`~risk_worker.domain.policies.validate_policy`); two policies with the
            same name.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyFileError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyFileError(path, None, f"invalid TOML: {exc}") from exc
    if unknown := sorted(set(data) - {"policy"}):
        raise PolicyFileError(path, None, f"unknown top-level key {unknown[0]!r} ([[policy]] only)")
    tables = data.get("policy")
    if not isinstance(tables, list) or not tables:
        raise PolicyFileError(path, None, "expected one or more [[policy]] tables")
    specs: list[PolicySpec] = []
    for index, table in enumerate(tables, start=1):
        name = table.get("name") if isinstance(table, dict) else None
        label = f"#{index} {name!r}" if isinstance(name, str) else f"#{index}"
        try:
            spec = msgspec.convert(table, PolicySpec, strict=True)
        except msgspec.ValidationError as exc:
            raise PolicyFileError(path, label, str(exc)) from None
        if not math.isfinite(spec.threshold):
            raise PolicyFileError(path, label, f"threshold must be finite, not {spec.threshold}")
        try:
            validate_policy(Policy("", *msgspec.structs.astuple(spec)))
        except PolicyError as exc:
            raise PolicyFileError(path, label, str(exc)) from None
        if any(s.name == spec.name for s in specs):
            raise PolicyFileError(path, label, "duplicate name (names must be unique)")
        specs.append(spec)
    return specs


def diff(current: Sequence[StoredPolicy], desired: Sequence[PolicySpec]) -> PolicyDiff:
    """Compare the stored policies with a file's (unique names), by name.

    Returns:
        added (in the file only), changed (per-field old → new), unchanged, and untouched
        (in the table only: apply never deletes).
    """
    stored = {p.name: p for p in current}
    added: list[PolicySpec] = []
    changed: list[PolicyChange] = []
    unchanged: list[StoredPolicy] = []
    for spec in desired:
        old = stored.get(spec.name)
        if old is None:
            added.append(spec)
            continue
        pairs = ((f, getattr(old, f), getattr(spec, f)) for f in FIELDS)
        fields = tuple(p for p in pairs if p[1] != p[2])
        if fields:
            changed.append(PolicyChange(old, spec, fields))
        else:
            unchanged.append(old)
    untouched = tuple(p for p in current if p.name not in {s.name for s in desired})
    return PolicyDiff(tuple(added), tuple(changed), tuple(unchanged), untouched)


def _fmt(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def render_diff(d: PolicyDiff) -> list[str]:
    """Human lines: ``+ add …``, ``~ change NAME: threshold 10 → 8``, ``= unchanged N``,
    ``untouched: …``."""
    lines = [
        f"+ add {s.name}: {s.type} {s.metric} {s.operator} {_fmt(s.threshold)}, scope "
        f"{s.scope}{'/' + s.scope_id if s.scope_id else ''}, priority {s.priority}"
        f"{'' if s.enabled else ', disabled'}"
        for s in d.added
    ]
    for c in d.changed:
        parts = (f"{f} {_fmt(old)} → {_fmt(new)}" for f, old, new in c.fields)
        lines.append(f"~ change {c.desired.name}: {', '.join(parts)}")
    lines.append(f"= unchanged {len(d.unchanged)}")
    if d.untouched:
        names = ", ".join(p.name for p in d.untouched)
        lines.append(f"untouched (in the table, not in the file; never deleted): {names}")
    return lines


async def read_stored(conn: Conn) -> list[StoredPolicy]:
    """Every row of ``risk_policies`` in (priority, name) order, whatever its validity."""
    return [
        StoredPolicy(**{**dict(row), "id": str(row["id"]), "threshold": float(row["threshold"])})
        for row in await conn.fetch(SELECT_POLICIES)
    ]


def _row(s: PolicySpec) -> list[Any]:
    """Column values in _INSERT order; threshold as the shortest decimal reading back as s's."""
    return [
        Decimal(repr(v)) if f == "threshold" else v for f, v in msgspec.structs.asdict(s).items()
    ]


async def apply(conn: Conn, d: PolicyDiff) -> int:
    """Write a diff in one transaction; returns the rows written (``d.writes``).

    INSERTs the added; UPDATEs the changed ``WHERE name = … AND version = <version read>``.

    Raises:
        PolicyConflictError: a changed policy was updated, or an added one created, since it
            was read; the transaction is rolled back, nothing is written.
    """
    async with conn.transaction():
        for spec in d.added:
            try:
                await conn.execute(_INSERT, *_row(spec))
            except asyncpg.UniqueViolationError as exc:
                raise PolicyConflictError(spec.name) from exc
        for change in d.changed:
            spec = change.desired
            status = await conn.execute(_UPDATE, *_row(spec), change.stored.version)
            if status != "UPDATE 1":
                raise PolicyConflictError(spec.name)
    return d.writes


async def disable(conn: Conn, name: str) -> bool:
    """Disable the policy ``name``: True when it exists (now disabled), False when it does not.

    A policy already disabled is left unwritten (no version bump, no NOTIFY).
    """
    return bool(await conn.fetchval(_DISABLE, name))
