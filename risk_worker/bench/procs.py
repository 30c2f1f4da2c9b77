"""Child processes of the bench (floor, worker, tick generator) and reading them from outside."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from risk_worker.bench.load import BenchError
from risk_worker.bench.varseed import var_env

TICKS_MODULE = "risk_worker.bench.ticks"


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (``VmHWM``) of a live process, MiB; 0.0 where unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def tail(log: Path, lines: int = 20) -> str:
    """The last ``lines`` of a child's log, prefixed by a newline ("" when unreadable)."""
    with contextlib.suppress(OSError):
        return "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


async def spawn(args: list[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """Start a child with stdout and stderr appended to ``log``."""
    with log.open("ab") as out:  # the child keeps its own descriptor
        return await asyncio.create_subprocess_exec(
            *args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )


async def stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after 10 s; waits for the exit."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            proc.kill()
    await proc.wait()


async def alive(
    proc: asyncio.subprocess.Process, log: Path, step: Coroutine[Any, Any, None]
) -> None:
    """Await ``step``, failing fast if ``proc`` exits meanwhile.

    Raises:
        BenchError: the child exited first (the message carries its log's tail).
    """
    task = asyncio.ensure_future(step)
    exited = asyncio.ensure_future(proc.wait())
    await asyncio.wait({task, exited}, return_when=asyncio.FIRST_COMPLETED)
    exited.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise BenchError(f"{log.stem} exited with code {proc.returncode}{tail(log)}")
    task.result()


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    """``GET http://127.0.0.1:<port><path>``: (status code, body).

    Raises:
        OSError, TimeoutError: no answer within 5 s.
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5.0)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5.0)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), body
    except (IndexError, ValueError):
        raise OSError(f"not an HTTP response from port {port}") from None


def worker_env(
    url: str,
    policy_file: Path,
    http_port: int,
    redis_url: str = "",
    worker_id: str = "bench-worker",
    var: bool = True,
) -> dict[str, str]:
    """The bench worker's environment: no database, the bench policies, its own HTTP port and
    ``RISK_WORKER_ID``; with ``redis_url`` that Redis (snapshots) and, with ``var`` (``--var``),
    the bench's ``RISK_VAR_*``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISK_")}
    if redis_url:
        env |= {"RISK_REDIS_URL": redis_url, **(var_env() if var else {})}
    return env | {
        "RISK_NATS_URL": url,
        "RISK_KV_BUCKET": "bench",
        "RISK_HTTP_HOST": "127.0.0.1",
        "RISK_HTTP_PORT": str(http_port),
        "RISK_LOG_LEVEL": "WARNING",
        "RISK_WORKER_ID": worker_id,
        "RISK_POLICY_FILE": str(policy_file),
    }


async def wait_ready(port: int, timeout: float) -> None:  # noqa: ASYNC109
    """Poll ``/ready`` until it answers 200.

    Raises:
        BenchError: not ready within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await http_get(port, "/ready"))[0] == 200:
                return
        except (OSError, TimeoutError):
            pass
        await asyncio.sleep(0.005)
    raise BenchError(f"the worker's /ready did not answer 200 within {timeout} s")


class TickStream:
    """The tick generator running until stopped (market data flowing during measurements).

    Args:
        url: NATS server URL.
        positions: symbols to cycle through.
        rate: ticks per second.
    """

    def __init__(self, url: str, positions: int, rate: float) -> None:
        self._args = [sys.executable, "-m", TICKS_MODULE, url, str(positions), str(rate)]
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the generator and wait until it is connected (≤ 30 s).

        Raises:
            BenchError: it exited or did not connect in time.
        """
        self._proc = proc = await asyncio.create_subprocess_exec(
            *self._args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 30.0)
        except TimeoutError:
            line = b""
        if b"ready" not in line:
            await self.stop()
            raise BenchError("the tick generator did not connect within 30 s")

    async def stop(self) -> int:
        """Stop it; how many ticks it published (flushed to the server).

        Raises:
            BenchError: it failed or reported nothing.
        """
        proc = self._proc
        if proc is None:
            return 0
        self._proc = None
        if proc.returncode is None:
            proc.terminate()
        out, err = await proc.communicate()
        try:
            return int(json.loads(out.decode().strip().splitlines()[-1])["published"])
        except (IndexError, ValueError, KeyError):
            raise BenchError(
                f"the tick generator exited {proc.returncode}: {err.decode()[-500:]}"
            ) from None
