"""The README's "Integrate" example runs as printed, against a real worker."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from risk_worker.devstack.nats_server import NatsServer
from tests.harness import Harness

README = Path(__file__).resolve().parents[2] / "README.md"


def example() -> str:
    """The one ```python block of the README's "## Integrate" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Integrate\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert len(blocks) == 1, "the Integrate section holds one python example"
    return str(blocks[0])


async def run(code: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISK_")}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code],
        env={**env, "RISK_NATS_URL": url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_readme_client_example_when_run_then_approved_and_metrics(
    harness: Harness, own_nats_server: NatsServer
) -> None:
    await harness.pnl("ACC1", 100_000.0)
    await harness.tick("BTCUSDT", 60_000.0)
    await harness.settle()
    code = example()
    result = await run(code, harness.settings.nats_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("APPROVED "), result.stdout
    assert "equity 100000" in result.stdout
    # No worker behind the server: denied no_responders, the metrics query says so too.
    alone = await run(code, own_nats_server.url)
    assert alone.returncode == 0, alone.stderr
    assert "DENIED no_responders" in alone.stdout and "no metrics: no_responders" in alone.stdout
