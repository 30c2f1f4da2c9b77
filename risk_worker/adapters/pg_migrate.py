"""Forward-only schema migrations for PostgreSQL: `migrations/NNNN_name.sql`, applied in order.

Each file runs in its own transaction (so it must not contain BEGIN/COMMIT) and is recorded in
`schema_migrations` with the SHA-256 of its bytes. A session advisory lock is held for the whole
run, so two processes migrating at once are serialised: the second waits, then finds nothing
pending. An applied file that changed or disappeared stops the run before anything is applied.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from risk_worker.errors import RiskWorkerError

# The advisory lock key: the ASCII bytes of "riskmigr" as a signed 64-bit integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"riskmigr", "big", signed=True)
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[A-Za-z0-9_-]+)\.sql$")
_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RiskWorkerError):
    """Migrations cannot be applied: a changed or missing applied file, a bad file name, an
    out-of-order file, or SQL that PostgreSQL refused (the cause is chained)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: `version` is its 4-digit prefix, `checksum` the hex SHA-256."""

    version: str
    name: str
    sql: str
    checksum: str


@dataclass(frozen=True, slots=True)
class MigrationState:
    """One line of `status`: a file, an applied row, or both.

    Attributes:
        version: The 4-digit version.
        name: The file's name part (or the recorded one when the file is missing).
        applied_at: When it was applied (UTC), or None while pending.
        checksum_ok: False when the applied file changed or is missing; True otherwise
            (pending files included).
    """

    version: str
    name: str
    applied_at: dt.datetime | None
    checksum_ok: bool


def migrations_dir() -> Path:
    """Returns the migrations directory: `$RISK_MIGRATIONS_DIR`, else `<repo root>/migrations`.

    Raises:
        FileNotFoundError: When that directory does not exist (the message names
            RISK_MIGRATIONS_DIR).
    """
    default = Path(__file__).resolve().parents[2] / "migrations"
    directory = Path(os.environ.get("RISK_MIGRATIONS_DIR") or default)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"migrations directory {directory} not found; set RISK_MIGRATIONS_DIR to the "
            "directory holding the NNNN_name.sql files"
        )
    return directory


def load_migrations(directory: Path) -> list[Migration]:
    """Reads every `*.sql` file in `directory`, sorted by version.

    Raises:
        MigrationError: When a `.sql` file is not named `NNNN_name.sql` or a version repeats.
        OSError: When the directory or a file cannot be read.
    """
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        data = path.read_bytes()
        version = match["version"]
        if version in found:
            raise MigrationError(f"{path.name}: version {version} is used by two files")
        sql, checksum = data.decode("utf-8"), hashlib.sha256(data).hexdigest()
        found[version] = Migration(version, match["name"], sql, checksum)
    return [found[v] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection, directory: Path) -> list[str]:
    """Applies the pending migrations in `directory`, in version order, one transaction each.

    Args:
        conn: A connection outside any transaction; it holds the advisory lock meanwhile.
        directory: Where the `NNNN_name.sql` files are (see `migrations_dir`).

    Returns:
        The versions applied by this call, in order (empty when up to date).

    Raises:
        MigrationError: When an applied file changed or is missing, a pending file is older
            than the newest applied one, or a migration's SQL fails (that one is rolled back;
            the ones before it stay applied).
        asyncpg.PostgresError, OSError: When the connection fails.
    """
    migrations = await asyncio.to_thread(load_migrations, directory)
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = {r["version"]: r for r in await conn.fetch("SELECT * FROM schema_migrations")}
        _refuse_drift(migrations, applied)
        done: list[str] = []
        for migration in migrations:
            if migration.version not in applied:
                await _apply(conn, migration)
                done.append(migration.version)
        return done
    finally:
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def status(conn: asyncpg.Connection, directory: Path) -> list[MigrationState]:
    """Lists every migration, applied or pending, in version order (reads only, no lock).

    Raises:
        MigrationError: When a file name is invalid (see `load_migrations`).
        asyncpg.PostgresError, OSError: When the connection fails.
    """
    migrations = {m.version: m for m in await asyncio.to_thread(load_migrations, directory)}
    applied: dict[str, asyncpg.Record] = {}
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        applied = {r["version"]: r for r in await conn.fetch("SELECT * FROM schema_migrations")}
    states = []
    for version in sorted(migrations.keys() | applied.keys()):
        file, row = migrations.get(version), applied.get(version)
        name = file.name if file is not None else str(row["name"] if row else "")
        ok = row is None or (file is not None and file.checksum == row["checksum"])
        states.append(MigrationState(version, name, row["applied_at"] if row else None, ok))
    return states


def _refuse_drift(migrations: list[Migration], applied: dict[str, asyncpg.Record]) -> None:
    """Raises MigrationError when the files no longer match what the database recorded."""
    files = {m.version: m for m in migrations}
    for version, row in sorted(applied.items()):
        file = files.get(version)
        if file is None:
            raise MigrationError(
                f"migration {version}_{row['name']} was applied but its file is missing"
            )
        if file.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {version}_{file.name} changed after it was applied (checksum "
                f"{file.checksum[:12]}… ≠ recorded {str(row['checksum'])[:12]}…); migrations "
                "are forward-only: add a new file instead"
            )
    newest = max(applied, default="")
    for migration in migrations:
        if migration.version not in applied and migration.version < newest:
            raise MigrationError(
                f"migration {migration.version}_{migration.name} is pending but older than the "
                f"applied {newest}; renumber it after {newest}"
            )


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    """Runs one migration and records it, in one transaction."""
    try:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    except asyncpg.PostgresError as exc:
        raise MigrationError(
            f"migration {migration.version}_{migration.name} failed: {exc}"
        ) from exc
