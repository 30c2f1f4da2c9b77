"""What `risk-worker dev` checks before it starts anything: one clear line per known failure.

A newcomer's first hour hits the same few walls: a second `dev` on the same data directory, a
port taken by something else, a variable exported from an earlier run that points at a server
no longer there. Each is a :class:`DevStartError` whose message is one line naming the cause
and the fix; the `dev` command prints it and exits 1, without a traceback.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from risk_worker.adapters.http_server import bind_error
from risk_worker.errors import RiskWorkerError

LOCK_NAME = "dev.pid"
"""The file in the data directory that `dev` locks while it runs; it holds the owner's pid."""


class DevStartError(RiskWorkerError):
    """`risk-worker dev` cannot start; the message is one line: the cause, then the fix."""


class DataDirLock:
    """An exclusive lock on a `dev` data directory, held while this process runs.

    The lock is an ``flock`` on ``<data_dir>/dev.pid``, which holds the owner's pid: the kernel
    drops it when the owner dies, however it dies, so a killed run never blocks the next one.
    The file descriptor is not inherited by the servers `dev` starts (Python opens files
    close-on-exec), so an orphaned server cannot keep the lock either.

    Args:
        data_dir: the directory to lock (created when missing).
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write this process's pid into the file.

        Raises:
            DevStartError: another process holds it (the message names its pid).
        """
        if sys.platform == "win32":  # no flock; one dev per directory is then up to the user
            return
        import fcntl  # noqa: PLC0415  # POSIX only

        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DevStartError(
                f"another `risk-worker dev` (pid {other}) is already running on {self.data_dir}: "
                f"stop it (Ctrl-C in its terminal, or `kill {other}`) or pass --data-dir with "
                "another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent). The file stays; the next owner rewrites it."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def check_nats_port(url: str, timeout: float = 1.0) -> bool:
    """Whether a NATS server answers at ``url``'s host and port.

    A NATS server sends ``INFO {...}`` as soon as a client connects (also before TLS).

    Args:
        url: a server URL (only the first of a comma-separated list is tried; no scheme means
            ``nats://``, no port 4222).
        timeout: seconds for the connection and the first line.

    Returns:
        True when a NATS server answers; False when nothing listens there.

    Raises:
        DevStartError: something listens there but does not speak NATS (the message names
            the address and ``RISK_NATS_URL``, which moves it).
    """
    host, port = _host_port(url)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return False
    with sock:
        try:
            greeting = sock.recv(5)
        except OSError:
            greeting = b""
    if greeting.startswith(b"INFO"):
        return True
    raise DevStartError(
        f"{host}:{port} is in use by a program that is not a NATS server: stop it, or set "
        f"RISK_NATS_URL=nats://127.0.0.1:<free port> and `dev` starts its nats-server there"
    )


def check_http_port(host: str, port: int) -> None:
    """Binds ``host:port`` for a moment, so a taken port fails before any server starts.

    Args:
        host: ``RISK_HTTP_HOST``'s value (``127.0.0.1`` in `dev` unless set).
        port: ``RISK_HTTP_PORT``'s value; 0 (any free port) is not checked.

    Raises:
        ConfigError: the address cannot be bound (see :func:`http_server.bind_error`).
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise bind_error(host, port, exc) from None


def _host_port(url: str) -> tuple[str, int]:
    first = url.split(",", maxsplit=1)[0].strip()
    parts = urlsplit(first if "://" in first else f"nats://{first}")
    try:
        port = parts.port or 4222
    except ValueError:
        port = 4222
    return parts.hostname or "127.0.0.1", port


def command_line(pid: int) -> str | None:
    """The command line of process ``pid`` (its arguments joined by spaces), None if not alive.

    Reads ``/proc/<pid>/cmdline`` where it exists (Linux), else asks ``ps``. A process that
    exists but whose command line cannot be read gives ``""``.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, someone else's
    if Path("/proc/self/cmdline").exists():
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            return ""
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()
    import subprocess  # noqa: PLC0415  # not Linux: rare path

    done = subprocess.run(
        ["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""
