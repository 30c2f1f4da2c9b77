"""An embedded PostgreSQL server on loopback for `risk-worker dev` and the tests.

The binaries (`initdb`, `postgres`, `pg_isready`) come from the PyPI package `pgserver` (the
`dev` extra), imported lazily so this module imports without it. `postgres` runs as a direct
child process, so it can be stopped, killed and restarted on the same port with the same data.
PostgreSQL refuses to run as root; as root the server runs as the system user `pgserver`
(created when absent), as `pgserver.PostgresServer` does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from risk_worker.devstack.childproc import ChildServer
from risk_worker.devstack.nats_server import free_port
from risk_worker.devstack.preflight import DevStartError, command_line

_LOG_NAME = "postgres.log"
_POLL_INTERVAL_S = 0.05
_SYSTEM_USER = "pgserver"
_MAX_SOCKET_PATH = 100  # bytes: sun_path is 108 on Linux, 104 on macOS


def postgres_bin_dir() -> Path:
    """Returns the directory holding the PostgreSQL binaries shipped by `pgserver`.

    Raises:
        RuntimeError: When `pgserver` is not installed.
    """
    with warnings.catch_warnings():
        # Importing pgserver computes a runtime directory we do not use; without
        # XDG_RUNTIME_DIR set, platformdirs warns about it.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        try:
            from pgserver._commands import POSTGRES_BIN_PATH  # noqa: PLC0415  # dev extra only
        except ImportError as exc:
            raise RuntimeError(
                "embedded PostgreSQL needs the pgserver package: "
                "pip install pgserver (the dev extra: pip install -e '.[dev]')"
            ) from exc
    return Path(POSTGRES_BIN_PATH)


class PostgresServer(ChildServer):
    """A `postgres` child process on 127.0.0.1 with trust authentication, user `postgres`.

    Nothing runs until `start()`. The first start initialises `<data_dir>/pgdata` when needed,
    picks a free port (unless one is given) and keeps it, so `restart()` comes back at the same
    URL with the same data. Output goes to `<data_dir>/postgres.log`. Use it as a context manager
    or call `stop()` (idempotent); servers still running at interpreter exit are stopped.

    Args:
        data_dir: Directory for the cluster (`pgdata/`), the Unix socket and the log.
        port: TCP port; None picks a free one at first start.
        fast: Runs with `fsync=off` (for tests: a crash of the machine may lose data).
    """

    NAME = "PostgresServer"
    LOG_NAME = _LOG_NAME
    STOP_SIGNAL = signal.SIGINT
    KILL_GROUP = True

    def __init__(self, data_dir: Path, *, port: int | None = None, fast: bool = False) -> None:
        super().__init__(data_dir, port)
        self.pgdata = self.data_dir / "pgdata"
        self.fast = fast
        self._socket_dir: Path | None = None

    def kill(self) -> None:
        """SIGKILL the postmaster and its children, then wait (at most `CHILDREN_GONE_S`) until
        the children are gone: each runs in a session of its own (PostgreSQL calls `setsid` in
        every child), so the group kill misses them, and a restart while one still holds the
        shared memory fails ("pre-existing shared memory block is still in use"). The children
        are read from `/proc` (Linux); elsewhere only the postmaster's group is killed."""
        pid = self.pid
        children = _children(pid) if pid is not None else []
        super().kill()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + CHILDREN_GONE_S
        while children and time.monotonic() < deadline:
            children = [c for c in children if _exists(c)]
            time.sleep(0.01)

    @property
    def url(self) -> str:
        """Connection URL of the `postgres` database, `postgresql://postgres@127.0.0.1:PORT/postgres`."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 20.0) -> None:
        """Initialises the cluster if needed, launches `postgres` and waits until it accepts.

        Args:
            timeout: Seconds to wait for `pg_isready` to report the server accepting
                connections on 127.0.0.1:port (initdb, when needed, runs before the deadline).

        Raises:
            RuntimeError: When already running, when pgserver is missing, when initdb fails,
                or when the server exits or is not ready before the deadline (the process is
                killed; the message has the log's tail).
            DevStartError: A `postgres` process started earlier (by a run that was killed)
                still serves `pgdata`; the one-line message names its pid.
        """
        if self.running:
            raise RuntimeError(f"postgres is already running (pid {self.pid})")
        bin_dir = postgres_bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = _run_as_user(bin_dir, self.data_dir)
        socket_dir = self._prepare_socket_dir(user)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir, user)
        self._clear_stale_pid_file()
        if self._port is None:
            self._port = free_port()
        args = [str(bin_dir / "postgres"), "-D", str(self.pgdata), "-p", str(self._port)]
        args += ["-c", "listen_addresses=127.0.0.1", "-k", str(socket_dir)]
        if self.fast:
            args += ["-c", "fsync=off"]
        with (self.data_dir / self.LOG_NAME).open("ab") as log:  # the child keeps its own copy
            self._proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=self.pgdata, user=user,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not postgres
            )  # fmt: skip
        assert self._proc is not None
        self._launched(self._proc)
        try:
            self._wait_ready(bin_dir, self._proc, time.monotonic() + timeout)
        except BaseException:
            self.kill()
            raise

    def _clear_stale_pid_file(self) -> None:
        """Removes `postmaster.pid` left by a killed run unless its postgres is still alive.

        PostgreSQL itself refuses to start when the pid in the file belongs to any live process
        (after a crash that pid is often reused by another program, in containers especially).
        The file is stale unless that process is a `postgres` running on this `pgdata`.

        Raises:
            DevStartError: That `postgres` still runs (an orphan of a killed `dev`).
        """
        pid_file = self.pgdata / "postmaster.pid"
        try:
            first_line = pid_file.read_text(errors="replace").split("\n", 1)[0].strip()
        except FileNotFoundError:
            return
        pid = int(first_line) if first_line.isdigit() else None
        running = command_line(pid) if pid is not None else None
        if pid is not None and running is not None and (running == "" or "postgres" in running):
            raise DevStartError(
                f"a PostgreSQL started by an earlier run (pid {pid}) still serves {self.pgdata}: "
                f"stop it with `kill {pid}` and start again"
            )
        pid_file.unlink(missing_ok=True)

    def _initdb(self, bin_dir: Path, user: str | None) -> None:
        """Creates a fresh cluster in `pgdata` (removing a partial one left by a failed run)."""
        shutil.rmtree(self.pgdata, ignore_errors=True)
        self.pgdata.mkdir(mode=0o700)
        if user is not None:
            shutil.chown(self.pgdata, user, user)
        args = [str(bin_dir / "initdb"), "-D", str(self.pgdata), "--auth=trust", "-U"]
        args += ["postgres", "--encoding=utf8", "--no-instructions"]
        if self.fast:
            args.append("--no-sync")
        with (self.data_dir / self.LOG_NAME).open("ab") as log:
            done = subprocess.run(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=self.pgdata, user=user, check=False
            )
        if done.returncode != 0:
            raise RuntimeError(f"initdb exited with code {done.returncode}{self._tail()}")

    def _prepare_socket_dir(self, user: str | None) -> Path:
        """Returns the Unix socket directory: `<data_dir>/run`, or a short temporary one."""
        if self._socket_dir is None:
            candidate = self.data_dir / "run"
            if len(os.fsencode(candidate / ".s.PGSQL.65535.lock")) > _MAX_SOCKET_PATH:
                candidate = Path(tempfile.mkdtemp(prefix="rwpg-"))
            candidate.mkdir(exist_ok=True)
            self._socket_dir = candidate
        if user is not None:
            shutil.chown(self._socket_dir, user, user)
        return self._socket_dir

    def _wait_ready(self, bin_dir: Path, proc: subprocess.Popen[bytes], deadline: float) -> None:
        """Polls `pg_isready` over TCP until it answers 0 (accepting connections)."""
        probe = [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        probe += ["-U", "postgres", "-d", "postgres", "-t", "1"]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"postgres exited with code {proc.returncode}{self._tail()}")
            if subprocess.run(probe, check=False, capture_output=True).returncode == 0:
                return
            time.sleep(_POLL_INTERVAL_S)
        raise RuntimeError(f"postgres did not accept connections within the deadline{self._tail()}")


def _run_as_user(bin_dir: Path, data_dir: Path) -> str | None:
    """Returns the system user to run PostgreSQL as: None (ourselves), or `pgserver` as root.

    As root, makes sure the user exists, that it can traverse `data_dir`'s parents and run the
    binaries, and that it owns `data_dir`.
    """
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import stat  # noqa: PLC0415  # root only

    from pgserver.utils import (  # noqa: PLC0415  # dev extra only, imported by postgres_bin_dir
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(_SYSTEM_USER)
    ensure_prefix_permissions(data_dir)
    ensure_prefix_permissions(bin_dir)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(bin_dir, read | execute)
    ensure_folder_permissions(bin_dir.parent / "lib", read)
    shutil.chown(data_dir, _SYSTEM_USER, _SYSTEM_USER)
    return _SYSTEM_USER


CHILDREN_GONE_S = 10.0
"""How long a kill waits for the postmaster's children to be gone (orphans are reaped by init,
which took up to 1.7 s here)."""


def _children(pid: int) -> list[int]:
    """The pids of `pid`'s children (`/proc/<pid>/task/<pid>/children`; empty where absent)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _exists(pid: int) -> bool:
    """Whether a process `pid` exists (a zombie not yet reaped counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
