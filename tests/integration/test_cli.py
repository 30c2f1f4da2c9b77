"""The risk-worker command line, run as a user runs it: a real process, real NATS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from risk_worker.devstack.nats_server import NatsServer
from tests.harness import Harness
from tests.helpers import wait_for

CLI = str(Path(sys.executable).parent / "risk-worker")


async def cli(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI without blocking the event loop (the worker under test runs in it)."""
    full_env = {**os.environ, "RISK_NATS_URL": url, "COLUMNS": "200", "RISK_HTTP_PORT": "0", **env}
    return await asyncio.to_thread(
        subprocess.run,
        [CLI, *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@contextlib.asynccontextmanager
async def serving_run(
    env: dict[str, str], log_path: Path, what: str = "the worker did not start"
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``risk-worker run`` with ``env``, logging to ``log_path``, once it serves checks; killed
    on the way out if the test left it running (never a stray worker in the queue group)."""
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            CLI, "run", env=env, stdout=log_file, stderr=log_file
        )
        try:
            await wait_for(
                lambda: b"serving risk.check.order" in log_path.read_bytes(), 15.0, 0.1, what
            )
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_cli_check_when_approved_denied_invalid_or_unanswered_then_exit_0_1_2_2(
    harness: Harness, own_nats_server: NatsServer
) -> None:
    url = harness.settings.nats_url
    published = await cli(url, "publish", "pnl.update", '{"account_id": "CLI1", "balance": 1e5}')
    assert published.returncode == 0, published.stderr
    await wait_for(lambda: "CLI1" in harness.worker.engine.known_accounts())
    base = ("check", "--account", "CLI1", "--symbol", "BTCUSDT", "--side", "buy")
    approved = await cli(url, *base, "--quantity", "1", "--price", "50000", "--dry-run")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "APPROVED" in approved.stdout
    assert "post-trade: equity 100,000.00" in approved.stdout  # the CLI asks for the full reply
    compact = await cli(
        url, *base, "--quantity", "1", "--price", "50000", "--dry-run", "--detail", "compact"
    )
    assert compact.returncode == 0 and "APPROVED" in compact.stdout
    assert "post-trade" not in compact.stdout
    denied = await cli(url, *base, "--quantity", "100", "--price", "50000")
    assert denied.returncode == 1
    assert "order_too_large" in denied.stdout  # 5M of notional on 100k: Max Order Size
    # A symbol only the worker refuses: an invalid request, not a denial at some risk level.
    bad_symbol = ("check", "--account", "CLI1", "--symbol", "BTC USDT", "--side", "buy")
    invalid = await cli(url, *bad_symbol, "--quantity", "1", "--price", "50000")
    assert invalid.returncode == 2, invalid.stdout + invalid.stderr
    first = invalid.stdout.splitlines()[0]
    assert first.startswith("INVALID REQUEST order cli-"), invalid.stdout
    assert "account CLI1: symbol:" in first
    assert "DENIED" not in invalid.stdout and "risk HIGH" not in invalid.stdout
    as_json = await cli(url, *bad_symbol, "--quantity", "1", "--json")
    assert as_json.returncode == 2
    assert '"rejection_reason": "invalid_request"' in as_json.stdout
    # A server with no worker behind it: no responders means denied, exit 2.
    unanswered = await cli(own_nats_server.url, *base, "--quantity", "1", "--price", "50000")
    assert unanswered.returncode == 2
    assert "DENIED" in unanswered.stderr


async def test_cli_check_when_side_or_quantity_malformed_then_usage_error_nothing_sent() -> None:
    # No server at this address: reaching for NATS would print "cannot reach NATS" instead.
    nowhere = "nats://127.0.0.1:1"
    base = ("check", "--account", "CLI1", "--symbol", "BTCUSDT")
    cases = [
        (("--side", "sideways", "--quantity", "1"), "--side"),
        *((("--side", "buy", "--quantity", q), "--quantity") for q in ("0", "-1", "nan", "inf")),
        (("--side", "sell", "--quantity", "1", "--price", "nan"), "--price"),
    ]
    for args, option in cases:
        result = await cli(nowhere, *base, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"Invalid value for '{option}'" in result.stderr, (args, result.stderr)
        assert "cannot reach NATS" not in result.stderr, args
        assert result.stdout == "", args


async def test_cli_when_configuration_bad_then_stops_naming_the_variable() -> None:
    result = await cli("nats://127.0.0.1:1", "run", RISK_STATE_MAX_AGE="soon")
    assert result.returncode == 2
    assert "RISK_STATE_MAX_AGE" in result.stderr


async def test_cli_run_when_nats_unreachable_then_fails_with_clear_message(
    tmp_path: Path,
) -> None:
    result = await cli("nats://127.0.0.1:1", "run", RISK_NATS_CONNECT_TIMEOUT="1")
    assert result.returncode == 1
    assert "cannot connect to NATS" in result.stderr
    assert "RISK_NATS_URL" in result.stderr


async def test_cli_publish_when_body_not_an_object_then_exit_2(harness: Harness) -> None:
    result = await cli(harness.settings.nats_url, "publish", "pnl.update", "[1, 2]")
    assert result.returncode == 2
    assert "JSON object" in result.stderr


async def test_cli_run_when_policy_table_unreadable_then_refuses_unless_fallback(
    database_url: str, own_nats_server: NatsServer, tmp_path: Path
) -> None:
    nats_server = own_nats_server  # its own server: this worker must not serve other tests
    # An empty database: no risk_policies table.
    refused = await cli(
        nats_server.url,
        "run",
        RISK_DATABASE_URL=database_url,
        RISK_KV_BUCKET="cli_fallback",
        RISK_NATS_CONNECT_TIMEOUT="5",
    )
    assert refused.returncode == 1
    assert "cannot load policies" in refused.stderr
    assert "RISK_POLICY_FALLBACK" in refused.stderr
    assert "@" not in refused.stderr.split("cannot load policies")[1][:200]  # no DSN leaked
    env = {
        **os.environ,
        "RISK_NATS_URL": nats_server.url,
        "RISK_DATABASE_URL": database_url,
        "RISK_POLICY_FALLBACK": "defaults",
        "RISK_HTTP_PORT": "0",
        "RISK_KV_BUCKET": "cli_fallback",
    }
    log_path = tmp_path / "worker.log"
    async with serving_run(env, log_path, "the worker did not start on the defaults") as proc:
        assert b"BUILT-IN DEFAULTS" in log_path.read_bytes()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 15)
    assert code == 0


async def test_run_when_terminal_closes_then_sighup_drains_and_exits_0(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    # Closing the terminal sends SIGHUP: a worker (and `dev`, which then stops its embedded
    # servers) must drain and stop as on Ctrl-C, not die and leave them orphaned.
    env = {
        **os.environ,
        "RISK_NATS_URL": nats_server.url,
        "RISK_HTTP_PORT": "0",
        "RISK_KV_BUCKET": "sighup_drains",
    }
    log_path = tmp_path / "worker.log"
    async with serving_run(env, log_path) as proc:
        proc.send_signal(signal.SIGHUP)
        code = await asyncio.wait_for(proc.wait(), 30)
    log = log_path.read_text()
    assert code == 0, log[-2000:]
    assert "signal received: draining" in log and "stopped" in log, log[-2000:]


async def test_run_when_nats_gone_then_sigterm_still_exits_0(
    own_nats_server: NatsServer, tmp_path: Path
) -> None:
    # A stop must end even when the server is gone (an orphaned worker once ignored SIGTERM).
    env = {
        **os.environ,
        "RISK_NATS_URL": own_nats_server.url,
        "RISK_HTTP_PORT": "0",
        "RISK_KV_BUCKET": "sigterm_no_nats",
    }
    log_path = tmp_path / "worker.log"
    async with serving_run(env, log_path) as proc:
        own_nats_server.kill()
        await asyncio.sleep(0.5)  # the worker notices the server is gone: time is the point
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0, log_path.read_text()[-2000:]


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("services",),
        ("publish", "pnl.update", '{"account_id": "A", "balance": 1}'),
        ("check", "--account", "A", "--symbol", "S", "--side", "buy", "--quantity", "1"),
        ("tail",),
    ],
)
async def test_cli_when_nats_unreachable_then_one_line_without_the_password(
    args: tuple[str, ...],
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "RISK_NATS_URL": f"nats://alice:s3cret-pw@127.0.0.1:{port}",
        "RISK_NATS_CONNECT_TIMEOUT": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode() + err.decode()
    assert proc.returncode == 2, text
    assert "cannot" in text and f"127.0.0.1:{port}" in text, text
    assert "s3cret-pw" not in text and "alice:***@" in text, text
