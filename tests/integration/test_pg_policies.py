"""Policies in a real PostgreSQL: loading, change notifications, and the `policies` commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import msgspec
import pytest
from typer.testing import CliRunner, Result

from risk_worker.adapters.pg_migrate import migrate, migrations_dir
from risk_worker.adapters.pg_policies import (
    LISTENER_NAME,
    PgPolicySource,
    PolicyLoadError,
    load_policies,
)
from risk_worker.adapters.policy_admin import (
    PolicyConflictError,
    apply,
    diff,
    disable,
    parse_policy_file,
    read_stored,
)
from risk_worker.cli.policies import policies
from risk_worker.devstack.postgres import PostgresServer
from risk_worker.domain.policies import default_policies
from tests.helpers import wait_for

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/postgres"
FILE = """
[[policy]]
name = "Max Account Leverage"
type = "hard"
metric = "leverage"
operator = "lte"
threshold = 8
priority = 10

[[policy]]
name = "BTC Position Cap"
type = "hard"
metric = "position_notional"
operator = "lte"
threshold = 500000.25
scope = "symbol"
scope_id = "BTCUSDT"
priority = 50

[[policy]]
name = "Daily Loss"
type = "soft"
metric = "daily_pnl"
operator = "gte"
threshold = -1000
enabled = false
"""


@pytest.fixture
async def url(database_url: str) -> str:
    """A fresh database with the schema (and its eight default policies)."""
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, migrations_dir())
    finally:
        await conn.close()
    return database_url


@pytest.fixture
async def conn(url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies.toml"
    path.write_text(FILE, encoding="utf-8")
    return path


async def listener_pid(conn: asyncpg.Connection) -> int | None:
    pid: int | None = await conn.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = "
        "current_database()",
        LISTENER_NAME["application_name"],
    )
    return pid


async def test_load_when_schema_fresh_then_the_eight_built_in_policies_with_their_ids(
    url: str,
) -> None:
    expected = sorted(default_policies(), key=lambda p: p.name)
    loaded = await PgPolicySource(url).load()
    assert sorted(loaded, key=lambda p: p.name) == expected
    assert [p.priority for p in loaded] == sorted(p.priority for p in expected)
    async with asyncpg.create_pool(url, min_size=1, max_size=1) as pool:
        assert list(await PgPolicySource(url, pool=pool).load()) == list(loaded)


async def test_load_when_a_row_is_unusable_then_it_is_skipped_and_logged_the_rest_loads(
    url: str, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    await conn.execute(
        "INSERT INTO risk_policies (name, type, metric, operator, threshold) VALUES "
        "('Future Metric', 'hard', 'nonsense', 'lte', 1), ('Huge', 'hard', 'leverage', 'lte', "
        "1e400)"
    )
    policies, errors = await load_policies(conn)
    assert {p.name for p in policies} == {p.name for p in default_policies()}
    assert len(errors) == 2
    assert any("'Future Metric'" in e and "metric 'nonsense'" in e for e in errors), errors
    assert any("'Huge'" in e and "finite" in e for e in errors), errors

    with caplog.at_level(logging.ERROR, logger="risk_worker.policies"):
        loaded = await PgPolicySource(url).load()
    assert len(loaded) == len(default_policies())
    logged = [r.getMessage() for r in caplog.records if r.name == "risk_worker.policies"]
    assert sorted(logged) == sorted(f"skipping policy row: {e}" for e in errors)


async def test_load_when_table_unreadable_or_empty_or_server_down_then_policy_load_error(
    url: str, conn: asyncpg.Connection
) -> None:
    with pytest.raises(PolicyLoadError, match="cannot read risk_policies"):
        await PgPolicySource(UNREACHABLE, connect_timeout=2).load()
    await conn.execute("ALTER TABLE risk_policies RENAME TO risk_policies_old")
    with pytest.raises(PolicyLoadError, match="UndefinedTableError"):
        await PgPolicySource(url).load()
    await conn.execute("ALTER TABLE risk_policies_old RENAME TO risk_policies")
    await conn.execute("DELETE FROM risk_policies")
    with pytest.raises(PolicyLoadError, match="no usable policy"):
        await PgPolicySource(url).load()


async def test_listen_when_row_updated_or_connection_killed_then_on_change_is_called(
    url: str, conn: asyncpg.Connection
) -> None:
    calls: list[int] = []
    task = asyncio.create_task(PgPolicySource(url).listen(lambda: calls.append(1)))
    try:
        await wait_for(lambda: len(calls) == 1, message="no call after the first connect")
        first_pid = await listener_pid(conn)
        assert first_pid is not None
        await conn.execute("UPDATE risk_policies SET threshold = 9 WHERE priority = 10")
        await wait_for(lambda: len(calls) == 2, timeout=1.0, message="no call within 1 s")

        assert await conn.fetchval("SELECT pg_terminate_backend($1)", first_pid)
        await wait_for(lambda: len(calls) == 3, message="no call after the reconnect")
        second_pid = await listener_pid(conn)
        assert second_pid not in (None, first_pid)
        await conn.execute("UPDATE risk_policies SET enabled = false WHERE priority = 20")
        await wait_for(lambda: len(calls) == 4, timeout=1.0, message="reconnected, not listening")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    await wait_for(lambda: _gone(conn), message="listener connection left open after cancel")


async def _gone(conn: asyncpg.Connection) -> bool:
    return await listener_pid(conn) is None


async def test_listen_when_server_restarts_then_retries_reconnects_and_calls_on_change(
    own_postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="risk_worker.policies")
    admin = await asyncpg.connect(own_postgres_server.url)
    try:
        await migrate(admin, migrations_dir())
    finally:
        await admin.close()
    calls: list[int] = []
    source = PgPolicySource(own_postgres_server.url, max_backoff=0.5)
    task = asyncio.create_task(source.listen(lambda: calls.append(1)))
    try:
        await wait_for(lambda: len(calls) == 1)
        await asyncio.to_thread(own_postgres_server.stop)
        await wait_for(
            lambda: any("(attempt 2)" in r.getMessage() for r in caplog.records),
            message="no failed reconnects logged while the server was down",
        )
        assert not task.done()
        await asyncio.to_thread(own_postgres_server.start)
        await wait_for(lambda: len(calls) == 2, timeout=10, message="no call after restart")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


async def test_listen_when_database_does_not_exist_then_policy_load_error(url: str) -> None:
    with pytest.raises(PolicyLoadError, match="cannot listen"):
        await PgPolicySource(url.rsplit("/", 1)[0] + "/no_such_db").listen(lambda: None)


async def test_apply_when_file_applied_twice_then_table_equals_file_and_second_is_no_op(
    conn: asyncpg.Connection, policy_file: Path
) -> None:
    specs = parse_policy_file(policy_file)
    first = diff(await read_stored(conn), specs)
    assert (len(first.added), len(first.changed), len(first.untouched)) == (
        2,
        1,
        8,
    )  # 9 seeded, 1 changed
    assert await apply(conn, first) == 3

    stored = {p.name: p for p in await read_stored(conn)}
    for spec in specs:
        row = msgspec.structs.asdict(stored[spec.name])
        assert {k: row[k] for k in msgspec.structs.asdict(spec)} == msgspec.structs.asdict(spec)
    assert stored["Max Account Leverage"].version == 2
    assert stored["BTC Position Cap"].version == 1
    second = diff(await read_stored(conn), specs)
    assert (second.writes, len(second.unchanged)) == (0, 3)
    assert await apply(conn, second) == 0


async def test_apply_when_policy_changed_since_read_then_conflict_and_nothing_written(
    conn: asyncpg.Connection, url: str, policy_file: Path
) -> None:
    d = diff(await read_stored(conn), parse_policy_file(policy_file))
    other = await asyncpg.connect(url)
    try:
        await other.execute(
            "UPDATE risk_policies SET priority = 11 WHERE name = $1", "Max Account Leverage"
        )
    finally:
        await other.close()
    with pytest.raises(PolicyConflictError, match="'Max Account Leverage'"):
        await apply(conn, d)
    rows = {p.name: p for p in await read_stored(conn)}
    assert "BTC Position Cap" not in rows
    leverage = rows["Max Account Leverage"]
    assert (leverage.threshold, leverage.priority, leverage.version) == (10.0, 11, 2)


async def test_apply_when_added_policy_created_since_read_then_conflict(
    conn: asyncpg.Connection, policy_file: Path
) -> None:
    d = diff(await read_stored(conn), parse_policy_file(policy_file))
    await conn.execute(
        "INSERT INTO risk_policies (name, type, metric, operator, threshold) "
        "VALUES ('Daily Loss', 'hard', 'daily_pnl', 'gte', -5)"
    )
    with pytest.raises(PolicyConflictError, match="'Daily Loss'"):
        await apply(conn, d)
    assert await conn.fetchval("SELECT count(*) FROM risk_policies") == 10


async def test_disable_when_enabled_disabled_or_missing_then_true_true_false(
    conn: asyncpg.Connection, url: str
) -> None:
    name = "Min Margin Ratio"
    assert await disable(conn, name) is True
    assert await disable(conn, name) is True  # already disabled: no second write
    row = await conn.fetchrow("SELECT enabled, version FROM risk_policies WHERE name = $1", name)
    assert (row["enabled"], row["version"]) == (False, 2)
    assert await disable(conn, "No Such Policy") is False
    loaded = {p.name: p for p in await PgPolicySource(url).load()}
    assert loaded[name].enabled is False


def run_cli(url: str | None, *args: str) -> Result:
    env = {"RISK_DATABASE_URL": url, "COLUMNS": "250"}
    return CliRunner().invoke(policies, list(args), env=env)


async def test_cli_policies_list_apply_disable_and_their_exit_codes(
    url: str, conn: asyncpg.Connection, policy_file: Path, tmp_path: Path
) -> None:
    listed = await asyncio.to_thread(run_cli, url, "list")
    assert listed.exit_code == 0, listed.output
    assert "Max Account Leverage" in listed.stdout and "drawdown_max" in listed.stdout
    assert "9 policies" in listed.stdout

    dry = await asyncio.to_thread(run_cli, url, "apply", str(policy_file))
    assert dry.exit_code == 0, dry.output
    assert "+ add BTC Position Cap" in dry.stdout
    assert "~ change Max Account Leverage: threshold 10 → 8" in dry.stdout
    assert "dry run: nothing written, pass --yes" in dry.stdout
    assert (
        await conn.fetchval("SELECT count(*) FROM risk_policies") == 9
    )  # the seeds of 0001, 0002 and 0004

    wet = await asyncio.to_thread(run_cli, url, "apply", str(policy_file), "--yes")
    assert wet.exit_code == 0, wet.output
    assert "wrote 3 policies" in wet.stdout
    again = await asyncio.to_thread(run_cli, url, "apply", str(policy_file), "--yes")
    assert "= unchanged 3" in again.stdout and "wrote 0 policies" in again.stdout
    listed = await asyncio.to_thread(run_cli, url, "list")
    assert "BTCUSDT" in listed.stdout and "500000.25" in listed.stdout

    disabled = await asyncio.to_thread(run_cli, url, "disable", "Max Drawdown")
    assert disabled.exit_code == 0, disabled.output
    assert (
        await conn.fetchval("SELECT enabled FROM risk_policies WHERE name = 'Max Drawdown'")
        is False
    )
    missing = await asyncio.to_thread(run_cli, url, "disable", "Nope")
    assert missing.exit_code == 1 and "no such policy" in missing.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text(FILE.replace("priority = 50", "priority = 50\ncolour = 1"), encoding="utf-8")
    refused = await asyncio.to_thread(run_cli, url, "apply", str(bad), "--yes")
    assert refused.exit_code == 1
    assert "bad policy file" in refused.stderr and "colour" in refused.stderr

    unset = await asyncio.to_thread(run_cli, None, "list")
    assert unset.exit_code == 2 and "RISK_DATABASE_URL" in unset.stderr
    down = await asyncio.to_thread(run_cli, UNREACHABLE, "list")
    assert down.exit_code == 2 and "cannot use PostgreSQL" in down.stderr
