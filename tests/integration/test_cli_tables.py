"""Every table the CLI prints, piped (stdout not a terminal, no ``COLUMNS``): each row whole on
one line, no cell cut with "…", whatever the width of the cells."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

from risk_worker.adapters import operator
from risk_worker.adapters.pg_migrate import migrations_dir
from risk_worker.devstack.nats_server import NatsServer
from risk_worker.domain.types import TradingState
from tests.helpers import wait_for
from tests.integration.conftest import HarnessFactory

CLI = str(Path(sys.executable).parent / "risk-worker")
LONG_REASON = "Emergency Drawdown Stop: the desk halted after the 14:02 venue outage [INC-4711]"
LONG_BY = "alice.operator-of-the-risk-desk"
POLICY_FILE = """
[[policy]]
name = "Emergency Drawdown Stop"
type = "emergency"
metric = "drawdown_max"
operator = "lte"
threshold = 0.25
priority = 5
"""
LONG_MIGRATION = "add_the_risk_events_retention_policy_and_the_indexes_it_needs"


async def piped(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run the CLI as ``risk-worker … | less`` would: stdin, stdout and stderr no terminal,
    ``COLUMNS`` unset; (exit code, stdout, stderr)."""
    full = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COLUMNS", "LINES") and not k.startswith("RISK_")
    }
    proc = await asyncio.create_subprocess_exec(
        CLI,
        *args,
        env={**full, "RISK_HTTP_PORT": "0", **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode()


def one_line(out: str, *cells: str) -> bool:
    """Whether some line of ``out`` holds every cell, each whole."""
    return any(all(cell in line for cell in cells) for line in out.splitlines())


async def test_nats_tables_when_piped_then_every_row_whole_on_one_line(
    own_nats_server: NatsServer, harness_factory: HarnessFactory
) -> None:
    # TABLES1 republished at least every 0.5 s: `status --wait 1` hears it
    h = await harness_factory(
        url=own_nats_server.url, monitor_interval=0.1, metrics_max_interval=0.5
    )
    await h.pnl("TABLES1", 123_456.0)
    await h.settle()
    await operator.trip(
        h.nc, h.settings.kv_bucket, TradingState.HALTED, LONG_REASON, LONG_BY, "TABLES1"
    )
    await wait_for(lambda: "TABLES1" in h.worker.engine.known_accounts())
    env = {
        "RISK_NATS_URL": own_nats_server.url,
        "RISK_KV_BUCKET": h.settings.kv_bucket,
        "RISK_MONITOR_INTERVAL": "0.1",
    }
    state_row = ("account.TABLES1", "HALTED", "operator", LONG_BY, LONG_REASON)

    code, out, err = await piped(env, "emergency", "status")
    assert code == 0, err
    assert one_line(out, "scope", "state", "source", "by", "reason", "revision"), out
    assert one_line(out, *state_row), out
    assert "…" not in out

    code, out, err = await piped(env, "status", "--wait", "1")
    assert code == 0, err
    assert one_line(out, h.settings.worker_id), out
    assert one_line(out, *state_row), out
    assert one_line(out, "TABLES1", "123,456.00"), out
    assert "…" not in out

    code, out, err = await piped(
        env, "restrict", "add", "TABLESUSDT", "--reason", LONG_REASON, "--by", LONG_BY
    )
    assert code == 0, err
    code, out, err = await piped(env, "restrict", "list")
    assert code == 0, err
    assert one_line(out, "TABLESUSDT", LONG_REASON, LONG_BY), out  # brackets kept, not markup
    assert "…" not in out

    code, out, err = await piped(env, "services")
    assert code == 0, err
    header = ("id", "worker", "version", "endpoint", "requests", "errors", "avg processing")
    assert one_line(out, *header), out
    assert one_line(out, h.settings.worker_id, "risk.check.order", " µs"), out
    assert "…" not in out


async def test_database_tables_when_piped_then_every_row_whole_on_one_line(
    migrated_url: str, tmp_path: Path
) -> None:
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(POLICY_FILE, encoding="utf-8")
    env = {"RISK_DATABASE_URL": migrated_url}
    code, _, err = await piped(env, "policies", "apply", str(policy_file), "--yes")
    assert code == 0, err

    code, out, err = await piped(env, "policies", "list")
    assert code == 0, err
    assert one_line(out, "Emergency Drawdown Stop", "emergency", "drawdown_max", "0.25"), out
    assert one_line(out, "name", "type", "metric", "operator", "threshold", "scope_id"), out
    assert "…" not in out

    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for applied in migrations_dir().glob("*.sql"):
        shutil.copy(applied, migrations / applied.name)
    (migrations / f"9999_{LONG_MIGRATION}.sql").write_text("SELECT 1;\n", encoding="utf-8")
    code, out, err = await piped({**env, "RISK_MIGRATIONS_DIR": str(migrations)}, "db", "status")
    assert code == 0, err
    assert one_line(out, "9999", LONG_MIGRATION, "pending"), out
    assert one_line(out, "version", "name", "state", "applied at (UTC)"), out
    assert "…" not in out
