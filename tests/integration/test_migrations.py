"""Schema migrations against a real PostgreSQL: applied once, guarded, and the schema's rules."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from risk_worker.adapters.pg_migrate import MigrationError, migrate, migrations_dir, status
from risk_worker.cli.db import db
from risk_worker.devstack.postgres import PostgresServer
from risk_worker.domain.policies import default_policies

REPO_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
FILES = sorted(p.name for p in REPO_MIGRATIONS.glob("*.sql"))
VERSIONS = [name[:4] for name in FILES]


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """A copy of the repository's migrations that a test may edit."""
    return Path(shutil.copytree(REPO_MIGRATIONS, tmp_path / "migrations"))


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a fresh, empty database."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def migrated(conn: asyncpg.Connection) -> asyncpg.Connection:
    """A connection to a fresh database with every migration applied."""
    await migrate(conn, REPO_MIGRATIONS)
    return conn


async def test_migrate_when_database_empty_then_three_tables_and_the_nine_built_in_policies(
    conn: asyncpg.Connection,
) -> None:
    assert await migrate(conn, REPO_MIGRATIONS) == VERSIONS

    tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert {r["tablename"] for r in tables} >= {
        "risk_policies",
        "risk_violations",
        "emergency_stops",
        "schema_migrations",
    }
    rows = await conn.fetch("SELECT name, type FROM risk_policies WHERE enabled")
    assert {r["name"] for r in rows} == {p.name for p in default_policies()}  # 0001, 0002 and 0004
    assert {r["name"] for r in rows if r["type"] == "emergency"} == {"Emergency Drawdown Stop"}


async def test_migrate_when_run_again_then_applies_nothing(migrated: asyncpg.Connection) -> None:
    assert await migrate(migrated, REPO_MIGRATIONS) == []
    assert await migrated.fetchval("SELECT count(*) FROM risk_policies") == 9


async def test_migrate_when_two_run_concurrently_then_each_migration_applied_once(
    database_url: str, migrations: Path
) -> None:
    # A slow second file widens the window in which an unguarded second run would collide.
    (migrations / "9998_slow.sql").write_text("SELECT pg_sleep(0.3); CREATE TABLE slow (id int);")
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        results = await asyncio.gather(migrate(first, migrations), migrate(second, migrations))
        recorded = await first.fetch("SELECT version FROM schema_migrations ORDER BY version")
        policies = await first.fetchval("SELECT count(*) FROM risk_policies")
    finally:
        await first.close()
        await second.close()

    assert sorted(results, key=len) == [[], [*VERSIONS, "9998"]]
    assert [r["version"] for r in recorded] == [*VERSIONS, "9998"]
    assert policies == 9


async def test_migrate_when_applied_file_changed_then_refuses(
    conn: asyncpg.Connection, migrations: Path
) -> None:
    await migrate(conn, migrations)
    first = migrations / FILES[0]
    first.write_text(first.read_text() + "\n-- edited after it was applied\n")
    (migrations / "9999_later.sql").write_text("CREATE TABLE later (id int);")

    with pytest.raises(MigrationError, match=f"{VERSIONS[0]}.*changed"):
        await migrate(conn, migrations)
    assert await conn.fetchval("SELECT to_regclass('later')") is None
    assert (await status(conn, migrations))[0].checksum_ok is False


async def test_migrate_when_applied_file_missing_then_refuses(
    conn: asyncpg.Connection, migrations: Path
) -> None:
    await migrate(conn, migrations)
    (migrations / FILES[0]).unlink()

    with pytest.raises(MigrationError, match="file is missing"):
        await migrate(conn, migrations)


async def test_status_when_migrated_then_nothing_pending(conn: asyncpg.Connection) -> None:
    before = await status(conn, REPO_MIGRATIONS)
    assert [(s.version, s.applied_at) for s in before] == [(v, None) for v in VERSIONS]

    await migrate(conn, REPO_MIGRATIONS)

    after = await status(conn, REPO_MIGRATIONS)
    assert [s.version for s in after] == VERSIONS
    assert all(s.applied_at is not None and s.checksum_ok for s in after)


def test_migrations_dir_when_variable_names_missing_dir_then_error_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert migrations_dir() == REPO_MIGRATIONS
    monkeypatch.setenv("RISK_MIGRATIONS_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="RISK_MIGRATIONS_DIR"):
        migrations_dir()


INSERT = (
    "INSERT INTO risk_policies (name, type, metric, operator, threshold, scope, scope_id)"
    " VALUES ('bad', $1, 'leverage', $2, $3::numeric, $4, $5)"
)
VALID = {"type": "hard", "operator": "lte", "threshold": "5", "scope": "symbol", "scope_id": "X"}


@pytest.mark.parametrize(
    "change",
    [
        {"type": "warning"},
        {"operator": "eq"},
        {"threshold": "NaN"},
        {"threshold": "Infinity"},
        {"scope": "portfolio"},
        {"scope_id": "BTC.USDT"},
    ],
    ids=["unknown_type", "unknown_operator", "nan", "infinity", "bad_scope", "dotted_scope_id"],
)
async def test_insert_when_policy_invalid_then_check_violation(
    migrated: asyncpg.Connection, change: dict[str, str]
) -> None:
    await migrated.execute(INSERT.replace("'bad'", "'valid'"), *VALID.values())
    with pytest.raises(asyncpg.CheckViolationError):
        await migrated.execute(INSERT, *{**VALID, **change}.values())


async def test_update_when_policy_changed_then_version_and_updated_at_bumped(
    migrated: asyncpg.Connection,
) -> None:
    name = "Max Account Leverage"
    before = await migrated.fetchrow("SELECT * FROM risk_policies WHERE name = $1", name)
    await migrated.execute("UPDATE risk_policies SET threshold = 8 WHERE name = $1", name)
    after = await migrated.fetchrow("SELECT * FROM risk_policies WHERE name = $1", name)
    assert before is not None and after is not None
    assert after["version"] == before["version"] + 1
    assert after["updated_at"] > before["updated_at"]
    assert after["created_at"] == before["created_at"]


async def test_update_when_listening_then_notified_with_policy_name(
    migrated: asyncpg.Connection, database_url: str
) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener("risk_policies_changed", lambda *a: received.put_nowait(a[3]))
        await migrated.execute(
            "UPDATE risk_policies SET enabled = false WHERE name = 'Max Drawdown'"
        )
        assert await asyncio.wait_for(received.get(), timeout=5) == "Max Drawdown"
    finally:
        await listener.close()


async def test_postgres_server_when_stopped_killed_or_restarted_then_same_port_and_data(
    own_postgres_server: PostgresServer,
) -> None:
    server, port = own_postgres_server, own_postgres_server.port
    assert server.url == f"postgresql://postgres@127.0.0.1:{port}/postgres"
    conn = await asyncpg.connect(server.url)
    await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
    await conn.close()

    for bounce in (server.stop, server.kill):
        old_pid = server.pid
        await asyncio.to_thread(bounce)
        assert not server.running and server.pid is None
        with pytest.raises(OSError):
            await asyncpg.connect(server.url, timeout=2)
        await asyncio.to_thread(server.start)
        assert server.port == port and server.pid != old_pid
    await asyncio.to_thread(server.restart)

    conn = await asyncpg.connect(server.url)
    try:
        assert await conn.fetchval("SELECT n FROM kept") == 42
    finally:
        await conn.close()


async def cli(*args: str, **env: str) -> tuple[int, str]:
    """Runs the `db` sub-app in a thread (it runs its own event loop); returns (exit, output)."""
    result = await asyncio.to_thread(CliRunner().invoke, db, list(args), env=env)
    return result.exit_code, result.output


async def test_db_cli_when_migrate_twice_then_applied_then_up_to_date(database_url: str) -> None:
    env = {"RISK_DATABASE_URL": database_url, "RISK_MIGRATIONS_DIR": ""}

    code, out = await cli("status", **env)
    assert code == 0, out
    assert f"0 applied, {len(VERSIONS)} pending" in out
    code, out = await cli("migrate", **env)
    assert code == 0, out
    assert all(f"applied {v}" in out for v in VERSIONS)
    code, out = await cli("migrate", **env)
    assert (code, "up to date" in out) == (0, True), out
    code, out = await cli("status", **env)
    assert code == 0, out
    assert f"{len(VERSIONS)} applied, 0 pending" in out
    assert "initial" in out


async def test_db_cli_when_url_missing_or_unreachable_then_exit_2_naming_the_cause() -> None:
    code, out = await cli("migrate", RISK_DATABASE_URL="")
    assert code == 2
    assert "RISK_DATABASE_URL" in out

    closed = "postgresql://postgres:hunter2@127.0.0.1:1/postgres"
    code, out = await cli("status", RISK_DATABASE_URL=closed)
    assert code == 2
    assert "cannot use PostgreSQL at 127.0.0.1:1/postgres" in out
    assert "hunter2" not in out


async def test_db_cli_when_applied_file_changed_then_exit_1(
    database_url: str, migrations: Path
) -> None:
    env = {"RISK_DATABASE_URL": database_url, "RISK_MIGRATIONS_DIR": str(migrations)}
    assert (await cli("migrate", **env))[0] == 0
    (migrations / FILES[0]).write_text("-- rewritten history\n")

    code, out = await cli("migrate", **env)
    assert code == 1
    assert "changed after it was applied" in out
    code, out = await cli("status", **env)
    assert code == 1
    assert "changed or missing" in out
