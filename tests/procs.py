"""Worker and operator-CLI subprocesses for the integration tests.

A worker runs as ``risk-worker run`` (the venv's script) with its settings in ``RISK_*``
variables and its output in a log file; operator commands run as ``risk-worker emergency ...``
and are awaited without blocking the test's event loop. Every started worker is stopped by
:func:`running_workers` (a fixture body), which prints the tail of each log when the test failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec
import nats.errors
import pytest
from nats.aio.client import Client

from tests.helpers import wait_for

RISK_WORKER = Path(sys.executable).parent / "risk-worker"
REPO_ROOT = Path(__file__).resolve().parent.parent
CHECK_SUBJECT = "risk.check.order"
ENC = msgspec.json.Encoder()
_LOG_TAIL_LINES = 40
_NO_REPLY = (nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError)


def unique(prefix: str) -> str:
    """A fresh name: ``prefix`` plus 10 hex digits (buckets, accounts, worker ids)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def risk_env(url: str, bucket: str, **extra: str) -> dict[str, str]:
    """This process's environment without ``RISK_*``, plus the server, the bucket and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISK_")}
    # The code under test, whichever checkout the venv's editable install points at.
    path = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.update(
        PYTHONPATH=path,
        RISK_NATS_URL=url,
        RISK_KV_BUCKET=bucket,
        RISK_HTTP_PORT="0",  # several workers on one machine: each its own free port
        PYTHONUNBUFFERED="1",
        PYTHONIOENCODING="utf-8",
        COLUMNS="200",  # rich tables and lines are not wrapped in the captured output
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class CliResult:
    """What one ``risk-worker`` command did."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


async def run_cli(env: dict[str, str], *args: str, timeout: float = 20.0) -> CliResult:  # noqa: ASYNC109
    """Run ``risk-worker ARGS`` to completion without blocking the event loop.

    Raises:
        AssertionError: the command did not finish within ``timeout`` seconds (it is killed).
    """
    proc = await asyncio.create_subprocess_exec(
        str(RISK_WORKER),
        *args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise AssertionError(
            f"`risk-worker {' '.join(args)}` did not finish within {timeout} s"
        ) from None
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    assert proc.returncode is not None
    return CliResult(
        tuple(args), proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    )


def order(
    account: str,
    side: str = "BUY",
    quantity: float = 0.1,
    price: float | None = 50_000.0,
    symbol: str = "BTCUSDT",
    dry_run: bool = True,
    **extra: Any,
) -> bytes:
    """The JSON body of one check request (dry run unless told otherwise)."""
    return ENC.encode(
        {
            "order_id": uuid.uuid4().hex,
            "account_id": account,
            "symbol": symbol,
            "side": side,
            "quantity": quantity,
            "price": price,
            "dry_run": dry_run,
            **extra,
        }
    )


async def check(nc: Client, account: str, timeout: float = 2.0, **kwargs: Any) -> dict[str, Any]:  # noqa: ASYNC109
    """Send one check (see :func:`order` for ``kwargs``) and decode the reply."""
    reply = await nc.request(CHECK_SUBJECT, order(account, **kwargs), timeout=timeout)
    decoded: dict[str, Any] = msgspec.json.decode(reply.data)
    return decoded


async def fund(
    nc: Client, account: str, balance: float = 100_000.0, price: float = 50_000.0
) -> None:
    """Publish ``pnl.update`` (balance) for ``account`` and a BTCUSDT mark."""
    now = _now_ms()
    await nc.publish(
        "pnl.update", ENC.encode({"account_id": account, "balance": balance, "timestamp": now})
    )
    await nc.publish("market.tick.BTCUSDT", ENC.encode({"price": price, "timestamp": now}))
    await nc.flush()


async def set_position(nc: Client, account: str, symbol: str, qty: float, entry: float) -> None:
    """Publish ``positions.update`` for ``account``."""
    body = {
        "account_id": account,
        "symbol": symbol,
        "quantity": qty,
        "entry_price": entry,
        "timestamp": _now_ms(),
    }
    await nc.publish("positions.update", ENC.encode(body))
    await nc.flush()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def wait_approved(nc: Client, account: str, timeout: float = 10.0, **kwargs: Any) -> None:  # noqa: ASYNC109
    """Wait until a dry-run check for ``account`` is approved (the worker caught up)."""
    last: dict[str, Any] | str = "no reply"

    async def approved() -> bool:
        nonlocal last
        try:
            last = await check(nc, account, timeout=0.5, **kwargs)
        except _NO_REPLY as exc:
            last = repr(exc)
            return False
        return bool(last["approved"])

    await wait_for(approved, timeout, 0.02, f"{account} never approved; last reply {last}")


async def wait_denied(
    nc: Client,
    account: str,
    reason: str,
    timeout: float = 10.0,  # noqa: ASYNC109
    **kwargs: Any,
) -> None:
    """Wait until a dry-run check for ``account`` is denied for ``reason``."""
    last: dict[str, Any] | str = "no reply"

    async def denied() -> bool:
        nonlocal last
        try:
            last = await check(nc, account, timeout=0.5, **kwargs)
        except _NO_REPLY as exc:
            last = repr(exc)
            return False
        return last["rejection_reason"] == reason

    await wait_for(denied, timeout, 0.02, f"{account} never denied {reason}; last reply {last}")


class WorkerProcess:
    """One ``risk-worker run`` subprocess; output (stdout and stderr) goes to ``log_path``."""

    def __init__(self, url: str, log_path: Path, bucket: str, **extra_env: str) -> None:
        self.worker_id = extra_env.pop("RISK_WORKER_ID", unique("proc-"))
        self.bucket = bucket
        self.log_path = log_path
        self.env = risk_env(url, bucket, RISK_WORKER_ID=self.worker_id, **extra_env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Launch the process (returns at once; see :meth:`wait_serving`)."""
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(RISK_WORKER), "run"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def returncode(self) -> int | None:
        """Exit code once exited, else None."""
        assert self.proc is not None
        return self.proc.poll()

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the worker."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:  # noqa: ASYNC109
        """Wait (polling, the loop keeps running) until the process exits; its exit code."""
        await wait_for(
            lambda: self.returncode is not None,
            timeout,
            0.01,
            f"worker {self.worker_id} still running after {timeout} s{self.tail()}",
        )
        code = self.returncode
        assert code is not None
        return code

    async def wait_serving(self, nc: Client, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Wait until this worker answers a check (any answer, from this worker's id).

        Each probe names a fresh account: with several instances, an account's checks are
        answered by its owner, so some fresh account is owned by this one.
        """

        async def answered() -> bool:
            if self.returncode is not None:
                raise AssertionError(f"worker exited {self.returncode} at start{self.tail()}")
            try:
                reply = await check(nc, unique("PROBE-"), timeout=0.5)
            except _NO_REPLY:
                return False
            return bool(reply.get("worker_id") == self.worker_id)

        await wait_for(
            answered, timeout, 0.05, f"worker {self.worker_id} never answered{self.tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; reaps the process. Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of the worker's log, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"\n--- {self.log_path.name} (last {lines} lines) ---\n" + "\n".join(text[-lines:])


class Workers:
    """Starts worker subprocesses for one test and stops them all at the end."""

    def __init__(self, log_dir: Path) -> None:
        self._dir = log_dir
        self.started: list[WorkerProcess] = []

    def start(self, url: str, bucket: str | None = None, **extra_env: str) -> WorkerProcess:
        """Launch a worker on ``url`` with its own bucket (a fresh one unless given)."""
        name = f"worker-{len(self.started)}.log"
        worker = WorkerProcess(url, self._dir / name, bucket or unique("rc_"), **extra_env)
        self.started.append(worker)
        worker.start()
        return worker

    def stop_all(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL), newest first."""
        for worker in reversed(self.started):
            with contextlib.suppress(Exception):
                worker.stop(timeout=5.0)

    def tails(self) -> str:
        """The log tail of every worker."""
        return "".join(w.tail() for w in self.started)


def running_workers(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Workers]:
    """Body of a ``workers`` fixture: yields :class:`Workers`, stops them all afterwards and,
    when the test failed, writes each worker's log tail to the terminal."""
    failed_before = request.session.testsfailed
    workers = Workers(tmp_path)
    try:
        yield workers
    finally:
        workers.stop_all()
        if request.session.testsfailed > failed_before and workers.started:
            text = f"\nworker logs of {request.node.nodeid}:{workers.tails()}\n"
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.ensure_newline()
                reporter.write_line(text)
            else:  # pragma: no cover
                print(text)
