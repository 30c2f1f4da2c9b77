"""The worker's connections: a server that does not answer ends the start with a message that
names the servers without their credentials."""

from __future__ import annotations

import socket

import pytest

from risk_worker.errors import ServerUnavailableError
from risk_worker.service.nats_connect import connect_worker
from tests.harness import settings_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("purpose", ["connect to NATS", "open the RISK_INPUTS connection"])
async def test_connect_when_no_server_answers_then_error_names_servers_without_password(
    purpose: str,
) -> None:
    port, other = free_port(), free_port()
    url = f"nats://alice:s3cret-pw@127.0.0.1:{port},nats://tok3n@127.0.0.1:{other}"
    settings = settings_for(url, nats_connect_timeout=0.5)
    with pytest.raises(ServerUnavailableError) as caught:
        await connect_worker(settings, "risk-worker test", purpose)
    text = str(caught.value)
    assert purpose in text and "RISK_NATS_URL" in text
    assert f"alice:***@127.0.0.1:{port}" in text and f"***@127.0.0.1:{other}" in text
    assert "s3cret-pw" not in text and "tok3n" not in text
