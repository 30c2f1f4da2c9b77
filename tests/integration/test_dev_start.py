"""`risk-worker dev` as a newcomer runs it: a real process, its own servers, its own output.

One `dev` runs for the module (servers on free ports in a temporary data directory); the tests
read its banner and log, start the commands the banner suggests, and start more `dev` processes
that must fail with one clear line (no traceback) naming the cause and the fix.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from risk_worker.devstack.nats_server import free_port
from tests.pg_fixtures import pg_data_dir
from tests.procs import RISK_WORKER, run_cli

START_TIMEOUT_S = 90.0  # a first start runs initdb
STOP_TIMEOUT_S = 30.0


def dev_env(**extra: str) -> dict[str, str]:
    """This process's environment without ``RISK_*``; NATS and HTTP on free ports; JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISK_")}
    env.update(
        RISK_NATS_URL=f"nats://127.0.0.1:{free_port()}",
        RISK_HTTP_PORT="0",
        RISK_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
        PYTHONIOENCODING="utf-8",
        COLUMNS="100",  # narrower than the messages: a wrapped line would show
    )
    env.update(extra)
    return env


def wait_until(predicate: Callable[[], bool], timeout: float, message: Callable[[], str]) -> None:
    """Polls ``predicate`` every 50 ms until true; AssertionError with ``message()`` after
    ``timeout`` seconds (a sync fixture cannot use the async ``tests.helpers.wait_for``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(message())
        time.sleep(0.05)


@dataclass
class DevProcess:
    """A running ``risk-worker dev`` with its output in files."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    data_dir: Path
    out_path: Path
    err_path: Path

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, object]]:
        """The worker's JSON log lines (stdout, between the banner's lines)."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    def exports(self) -> dict[str, str]:
        """The banner's ``export VAR=VALUE`` lines, as a mapping."""
        found = {}
        for line in self.stdout.splitlines():
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export":
                name, _, value = words[1].partition("=")
                found[name] = value
        return found

    def output(self) -> str:
        return f"\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr[-4000:]}"


def launch_dev(env: dict[str, str], data_dir: Path, log_dir: Path, *args: str) -> DevProcess:
    """Starts ``risk-worker dev --data-dir data_dir [args]`` (returns at once)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / "dev.out", log_dir / "dev.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [str(RISK_WORKER), "dev", "--data-dir", str(data_dir), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    return DevProcess(proc, env, data_dir, out_path, err_path)


def run_dev_to_end(env: dict[str, str], data_dir: Path, log_dir: Path, *args: str) -> DevProcess:
    """Runs a ``dev`` expected to fail at start, to its exit."""
    dev = launch_dev(env, data_dir, log_dir, *args)
    try:
        dev.proc.wait(START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop(dev)
        raise AssertionError(f"dev did not exit within {START_TIMEOUT_S} s{dev.output()}") from None
    return dev


def stop(dev: DevProcess) -> None:
    """Ctrl-C (SIGINT), then SIGKILL after the deadline."""
    if dev.proc.poll() is None:
        dev.proc.send_signal(signal.SIGINT)
        try:
            dev.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            dev.proc.kill()
            dev.proc.wait()


def assert_one_line_failure(dev: DevProcess) -> str:
    """Exit 1, no traceback, and exactly one line on stderr (the logs go to stdout): returned."""
    text = dev.stdout + dev.stderr
    assert dev.proc.returncode == 1, dev.output()
    assert "Traceback" not in text, dev.output()
    lines = [line for line in dev.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, dev.output()
    assert lines[0].startswith("risk-worker dev cannot start: "), dev.output()
    return lines[0]


@pytest.fixture(scope="module")
def running_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    """One ``dev`` for the module, serving (its worker announced itself in the log)."""
    logs = tmp_path_factory.mktemp("dev")
    with pg_data_dir() as data_dir:  # as root, postgres must reach it (see pg_data_dir)
        dev = launch_dev(dev_env(), data_dir, logs)

        def serving() -> bool:
            if dev.proc.poll() is not None:
                raise AssertionError(f"dev exited {dev.proc.returncode}{dev.output()}")
            return "serving risk.check.order" in dev.stdout

        try:
            wait_until(serving, START_TIMEOUT_S, lambda: f"dev never served{dev.output()}")
            yield dev
        finally:
            stop(dev)


async def test_dev_when_started_then_banner_exports_make_db_and_policies_commands_work(
    running_dev: DevProcess,
) -> None:
    exports = running_dev.exports()
    assert set(exports) == {"RISK_NATS_URL", "RISK_DATABASE_URL", "RISK_REDIS_URL"}, (
        running_dev.output()
    )
    assert exports["RISK_NATS_URL"] == running_dev.env["RISK_NATS_URL"]
    shell = {k: v for k, v in os.environ.items() if not k.startswith("RISK_")}
    shell.update(COLUMNS="200")

    bare = await run_cli(shell, "policies", "list")
    db_status = await run_cli({**shell, **exports}, "db", "status")
    policies = await run_cli({**shell, **exports}, "policies", "list")

    assert bare.returncode == 2  # without the exports, the command cannot know the database
    assert "RISK_DATABASE_URL" in bare.stderr
    assert db_status.returncode == 0, db_status
    assert "0001" in db_status.stdout
    assert policies.returncode == 0, policies
    assert "Max Account Leverage" in policies.stdout


def test_dev_when_started_then_http_endpoint_listens_on_loopback_only(
    running_dev: DevProcess,
) -> None:
    announced = [
        str(r["message"])
        for r in running_dev.log_records()
        if str(r["message"]).startswith("HTTP metrics and probes on ")
    ]
    assert len(announced) == 1, running_dev.output()
    address = announced[0].removeprefix("HTTP metrics and probes on ")
    host, _, port = address.rpartition(":")
    assert host == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", int(port)), timeout=2):
        pass
    outward = _non_loopback_address()
    if outward is not None:
        with pytest.raises(OSError), socket.create_connection((outward, int(port)), timeout=2):
            pass


def test_dev_when_started_then_the_decision_core_it_runs_is_logged(
    running_dev: DevProcess,
) -> None:
    from risk_worker import _core  # noqa: PLC0415 (the core this checkout's install has)

    lines = [
        str(r["message"])
        for r in running_dev.log_records()
        if str(r["message"]).startswith("decision core: ")
    ]
    assert len(lines) == 1, running_dev.output()
    expected = "compiled" if _core.compiled_problem() is None else "pure"
    assert lines[0].startswith(f"decision core: {expected} ("), lines[0]


def _non_loopback_address() -> str | None:
    """This machine's address on its default route, or None without one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def test_dev_when_started_then_lease_acquisition_is_logged_at_info(
    running_dev: DevProcess,
) -> None:
    wait_until(
        lambda: any("monitor lease" in str(r["message"]) for r in running_dev.log_records()),
        10.0,
        lambda: f"no lease record{running_dev.output()}",
    )
    lease = [r for r in running_dev.log_records() if "monitor lease" in str(r["message"])]
    assert [(r["level"], str(r["message"]).split(" (")[0]) for r in lease] == [
        ("INFO", "acquired the monitor lease")
    ]


def test_dev_when_one_already_runs_on_the_data_dir_then_one_line_naming_its_pid(
    running_dev: DevProcess, tmp_path: Path
) -> None:
    second = run_dev_to_end(dev_env(), running_dev.data_dir, tmp_path)

    line = assert_one_line_failure(second)
    assert f"pid {running_dev.proc.pid}" in line
    assert "--data-dir" in line
    assert running_dev.proc.poll() is None  # the first one runs on


def test_dev_when_http_port_taken_then_one_line_naming_port_and_variable(
    tmp_path: Path,
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        dev = run_dev_to_end(dev_env(RISK_HTTP_PORT=str(port)), tmp_path / "data", tmp_path)

    line = assert_one_line_failure(dev)
    assert f"port {port} is already in use" in line
    assert "RISK_HTTP_PORT" in line


def test_dev_when_nats_port_taken_by_another_program_then_one_line_naming_it(
    tmp_path: Path,
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        env = dev_env(RISK_NATS_URL=f"nats://127.0.0.1:{port}")
        dev = run_dev_to_end(env, tmp_path / "data", tmp_path)

    line = assert_one_line_failure(dev)
    assert f"127.0.0.1:{port} is in use by a program that is not a NATS server" in line
    assert "RISK_NATS_URL" in line


def test_dev_when_database_url_points_nowhere_then_one_line_naming_the_variable(
    tmp_path: Path,
) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    env = dev_env(RISK_DATABASE_URL=nowhere, RISK_REDIS_URL="redis://127.0.0.1:1/0")
    dev = run_dev_to_end(env, tmp_path / "data", tmp_path)

    line = assert_one_line_failure(dev)
    assert "cannot reach the database" in line
    assert "unset RISK_DATABASE_URL" in line
