"""The HTTP edge: /metrics, /health and /ready over real HTTP, on the test's running loop."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest

from risk_worker.adapters.http_server import HttpServer
from risk_worker.errors import ConfigError
from risk_worker.service.observability import Metrics

READY = {
    "nats": "connected",
    "trading_state": "confirmed",
    "policies": "loaded",
    "event_stream": "reachable",
    "inputs": "caught_up",
    "redis": "disabled",
}


class Probe:
    """A readiness callable the test controls; records the thread it ran on."""

    def __init__(self) -> None:
        self.checks: dict[str, object] = dict(READY)
        self.threads: set[int] = set()

    def __call__(self) -> dict[str, object]:
        self.threads.add(threading.get_ident())
        return dict(self.checks)


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
async def server(probe: Probe) -> AsyncIterator[HttpServer]:
    metrics = Metrics()
    metrics.check(None, 0.00005)
    http = HttpServer(metrics.registry, asyncio.get_running_loop(), probe, "127.0.0.1", 0)
    http.start()
    yield http
    await asyncio.to_thread(http.stop)


def get(port: int, path: str) -> tuple[int, str, bytes]:
    """GET ``path`` (blocking): status, content type and body, errors included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read()


async def test_metrics_when_scraped_then_serves_the_text_format(server: HttpServer) -> None:
    assert server.port != 0
    status, ctype, body = await asyncio.to_thread(get, server.port, "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain")
    assert b'risk_order_checks_total{reason="none",result="approved"} 1.0' in body


async def test_health_when_the_loop_answers_then_200(server: HttpServer) -> None:
    status, _, body = await asyncio.to_thread(get, server.port, "/health")
    assert (status, json.loads(body)) == (200, {"status": "ok"})


async def test_ready_when_every_part_is_ok_then_200_even_with_redis_disabled(
    server: HttpServer, probe: Probe
) -> None:
    status, _, body = await asyncio.to_thread(get, server.port, "/ready")
    assert status == 200
    assert json.loads(body) == {"ready": True, "checks": READY}
    assert probe.threads == {threading.get_ident()}  # ran on the loop's thread


async def test_ready_when_a_part_fails_then_503_naming_what_is_missing(
    server: HttpServer, probe: Probe
) -> None:
    probe.checks["trading_state"] = "unconfirmed"
    probe.checks["nats"] = "disconnected"
    probe.checks["redis"] = "disconnected"  # never required
    probe.checks["inputs"] = "replaying"  # the book is rebuilt from RISK_INPUTS at start
    status, _, body = await asyncio.to_thread(get, server.port, "/ready")
    assert status == 503
    answer = json.loads(body)
    assert answer["ready"] is False
    assert answer["missing"] == ["nats", "trading_state", "inputs"]
    assert answer["checks"]["redis"] == "disconnected"
    probe.checks = dict(READY)
    status, _, _ = await asyncio.to_thread(get, server.port, "/ready")
    assert status == 200


async def test_unknown_path_then_404(server: HttpServer) -> None:
    status, ctype, _ = await asyncio.to_thread(get, server.port, "/admin")
    assert (status, ctype) == (404, "application/json")


async def test_health_when_the_loop_is_blocked_then_503(server: HttpServer) -> None:
    answers: list[tuple[int, str, bytes]] = []
    client = threading.Thread(target=lambda: answers.append(get(server.port, "/health")))
    client.start()
    time.sleep(1.5)  # noqa: ASYNC251  # blocks the loop on purpose: what the probe must see
    await asyncio.to_thread(client.join, 5)
    [(status, _, body)] = answers
    assert (status, json.loads(body)) == (503, {"status": "event loop unresponsive"})
    status, _, _ = await asyncio.to_thread(get, server.port, "/health")
    assert status == 200


async def test_ready_when_the_loop_is_blocked_then_503(server: HttpServer) -> None:
    answers: list[tuple[int, str, bytes]] = []
    client = threading.Thread(target=lambda: answers.append(get(server.port, "/ready")))
    client.start()
    time.sleep(1.5)  # noqa: ASYNC251  # blocks the loop on purpose
    await asyncio.to_thread(client.join, 5)
    [(status, _, body)] = answers
    assert status == 503
    assert json.loads(body) == {
        "ready": False,
        "missing": ["event_loop"],
        "checks": {"event_loop": "event loop unresponsive"},
    }


async def test_ready_when_the_readiness_callable_raises_then_503(
    server: HttpServer, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("no state yet")

    server._readiness = broken  # the app's callable failing
    status, _, body = await asyncio.to_thread(get, server.port, "/ready")
    assert status == 503
    assert json.loads(body)["missing"] == ["readiness"]
    assert "the readiness check failed" in caplog.text


async def test_start_when_port_in_use_then_config_error_names_port_and_variable(
    probe: Probe,
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        http = HttpServer(Metrics().registry, asyncio.get_running_loop(), probe, "127.0.0.1", port)

        with pytest.raises(ConfigError) as info:
            http.start()

    assert info.value.variable == "RISK_HTTP_PORT"
    assert f"port {port} is already in use (127.0.0.1:{port})" in str(info.value)
    assert "\n" not in str(info.value)
