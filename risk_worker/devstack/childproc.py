"""What every embedded server child process shares: stop, kill, restart, log tail, cleanup.

``risk-worker dev`` and the tests start real servers (nats-server, PostgreSQL, Redis) as child
processes; each launcher subclasses :class:`ChildServer` and provides ``start``. Servers still
running when the interpreter exits are stopped, so none is left orphaned.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import ClassVar, Self

_LOG_TAIL_LINES = 30
_running: set[ChildServer] = set()


class ChildServer(abc.ABC):
    """A server child process on 127.0.0.1 with a port kept across restarts.

    Subclasses set ``NAME`` (for messages), ``LOG_NAME`` (the log file in ``data_dir``) and,
    when needed, ``STOP_SIGNAL`` (the graceful one) and ``KILL_GROUP`` (the server runs in its
    own session with children of its own, so SIGKILL goes to the whole group).

    Args:
        data_dir: directory for the server's data and log.
        port: TCP port; None lets the subclass pick a free one at first start.
    """

    NAME: ClassVar[str]
    LOG_NAME: ClassVar[str]
    STOP_SIGNAL: ClassVar[int] = signal.SIGTERM
    KILL_GROUP: ClassVar[bool] = False

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @abc.abstractmethod
    def start(self, timeout: float = 10.0) -> None:
        """Launch the server and wait until it serves (subclass-specific)."""

    @property
    def port(self) -> int:
        """TCP port. Raises RuntimeError before the first start when none was given."""
        if self._port is None:
            raise RuntimeError(f"{self.NAME} has not been started: its port is not known yet")
        return self._port

    @property
    def pid(self) -> int | None:
        """Process id while running, else None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _launched(self, proc: subprocess.Popen[bytes]) -> None:
        """Record a freshly started process (stopped at interpreter exit if still running)."""
        self._proc = proc
        _running.add(self)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (``STOP_SIGNAL``), then SIGKILL after ``timeout`` s. Idempotent."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(self.STOP_SIGNAL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        self.kill()

    def kill(self) -> None:
        """Kill with SIGKILL (a crash, for tests) and reap it. Idempotent."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            if self.KILL_GROUP:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
            proc.wait()
        _running.discard(self)

    def restart(self, timeout: float | None = None) -> None:
        """Stop if running, then start on the same port with the same data."""
        self.stop()
        if timeout is None:
            self.start()
        else:
            self.start(timeout)

    def _tail(self) -> str:
        try:
            lines = (self.data_dir / self.LOG_NAME).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "; log tail:\n" + "\n".join(lines[-_LOG_TAIL_LINES:])

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    """Stop servers still running when the interpreter exits."""
    for server in list(_running):
        server.stop(timeout=5.0)
