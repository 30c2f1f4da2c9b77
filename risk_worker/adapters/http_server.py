"""The worker's HTTP edge: ``/metrics``, ``/health`` and ``/ready`` for Prometheus and probes.

A small WSGI dispatcher, served by :mod:`wsgiref` with one thread per request in a daemon
thread; ``/metrics`` is prometheus-client's own WSGI app on the worker's registry. The probes
run their work on the worker's event loop (never reading its state from another thread):

- ``/health`` (liveness): 200 ``{"status": "ok"}`` when the loop runs a no-op within the
  timeout, else 503 ``{"status": "event loop unresponsive"}``.
- ``/ready`` (readiness): the app's ``readiness()`` returns one status per part; 200
  ``{"ready": true, "checks": {...}}`` when every required part is ok, else 503
  ``{"ready": false, "missing": [...], "checks": {...}}``. ``redis`` is never required.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, make_server

import msgspec
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from risk_worker.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")
Readiness = Callable[[], dict[str, object]]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]

REQUIRED = {
    "nats": "connected",
    "trading_state": "confirmed",
    "policies": "loaded",
    "event_stream": "reachable",
    "inputs": "caught_up",
}
"""The parts ``/ready`` requires, and the status each must report."""


class _Server(ThreadingWSGIServer):
    block_on_close = False  # stop() must not wait for a probe waiting on a busy loop


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the base class names it so
        """Log no request lines (scrapes every few seconds would drown the worker's log)."""


class HttpServer:
    """Serves metrics and probes on ``host:port`` until stopped.

    Args:
        registry: the metrics to expose on ``/metrics``.
        loop: the worker's event loop; the probes run on it.
        readiness: called on ``loop``; returns a status per part, e.g. ``{"nats":
            "connected", "trading_state": "confirmed", "policies": "loaded", "event_stream":
            "reachable", "redis": "disabled"}`` (see :data:`REQUIRED`).
        host: the address to bind (``0.0.0.0``, ``127.0.0.1``, ``::``).
        port: the TCP port; 0 picks a free one (then read :attr:`port`).
        probe_timeout: seconds the loop has to answer a probe.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        loop: asyncio.AbstractEventLoop,
        readiness: Readiness,
        host: str = "0.0.0.0",  # probes come from outside the host
        port: int = 9103,
        probe_timeout: float = 1.0,
    ) -> None:
        self._metrics = make_wsgi_app(registry)
        self._loop = loop
        self._readiness = readiness
        self._host = host
        self._port = port
        self._timeout = probe_timeout
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._server.server_port if self._server is not None else self._port

    def start(self) -> None:
        """Bind and serve in a daemon thread.

        Raises:
            ConfigError: the address cannot be bound; names ``RISK_HTTP_PORT`` (the port is in
                use or needs privileges) or ``RISK_HTTP_HOST`` (no such local address).
        """
        server_class = _Server6 if ":" in self._host else _Server
        try:
            server = make_server(self._host, self._port, self._app, server_class, _QuietHandler)
        except OSError as exc:
            raise bind_error(self._host, self._port, exc) from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.1,), name="risk-http", daemon=True
        )
        self._thread.start()
        log.info("HTTP metrics and probes on %s:%d", self._host, self.port)

    def stop(self) -> None:
        """Stop serving and close the socket (blocks up to ~0.1 s; idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- WSGI ---------------------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            result: Iterable[bytes] = self._metrics(environ, start_response)
            return result
        if environ.get("REQUEST_METHOD") not in {"GET", "HEAD"} and path in {"/health", "/ready"}:
            return _json(start_response, "405 Method Not Allowed", {"error": "GET only"})
        if path == "/health":
            try:
                self._on_loop(lambda: None)
            except _UnresponsiveError:
                return _json(start_response, "503 Service Unavailable", {"status": _LOOP_DOWN})
            return _json(start_response, "200 OK", {"status": "ok"})
        if path == "/ready":
            status, body = self._ready()
            return _json(start_response, status, body)
        return _json(start_response, "404 Not Found", {"error": f"no such path: {path}"})

    def _ready(self) -> tuple[str, dict[str, object]]:
        checks: dict[str, object]
        try:
            checks = self._on_loop(self._readiness)
            missing = [part for part, ok in REQUIRED.items() if checks.get(part) != ok]
        except _UnresponsiveError:
            checks, missing = {"event_loop": _LOOP_DOWN}, ["event_loop"]
        except Exception as exc:
            log.exception("the readiness check failed")
            checks, missing = {"readiness": f"failed: {exc!r}"}, ["readiness"]
        if missing:
            return "503 Service Unavailable", {"ready": False, "missing": missing, "checks": checks}
        return "200 OK", {"ready": True, "checks": checks}

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """``fn()``, run on the loop, waited for from this (HTTP) thread.

        Raises:
            _UnresponsiveError: the loop did not run it within the timeout, or is closed.
            Exception: whatever ``fn`` raised.
        """
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            if not done.set_running_or_notify_cancel():  # the probe timed out meanwhile
                return
            try:
                done.set_result(fn())
            except Exception as exc:
                done.set_exception(exc)

        try:
            self._loop.call_soon_threadsafe(call)
        except RuntimeError as exc:  # the loop is closed
            raise _UnresponsiveError from exc
        try:
            return done.result(timeout=self._timeout)
        except TimeoutError:
            done.cancel()
            raise _UnresponsiveError from None


def bind_error(host: str, port: int, exc: OSError) -> ConfigError:
    """The error for an HTTP address that cannot be bound: one line naming the address, the
    cause and the variable that changes it (``RISK_HTTP_PORT`` or ``RISK_HTTP_HOST``).

    Args:
        host: the address (``127.0.0.1``, ``0.0.0.0``, ``::``).
        port: the TCP port.
        exc: what ``bind`` raised.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(
            "RISK_HTTP_PORT",
            f"port {port} is already in use ({where}): stop what listens there, or set "
            "RISK_HTTP_PORT to a free port (0 picks one)",
        )
    if exc.errno == errno.EACCES:
        return ConfigError(
            "RISK_HTTP_PORT", f"port {port} needs privileges ({where}): choose one above 1023"
        )
    return ConfigError("RISK_HTTP_HOST", f"cannot listen on {where}: {exc.strerror or exc}")


class _UnresponsiveError(Exception):
    """The event loop did not answer a probe in time."""


_LOOP_DOWN = "event loop unresponsive"


def _json(start_response: StartResponse, status: str, body: dict[str, object]) -> list[bytes]:
    payload = msgspec.json.encode(body, enc_hook=str)
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return [payload]
