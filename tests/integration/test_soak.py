"""``benchmarks/soak.py --quick``: the whole soak (3-node cluster, PostgreSQL, Redis, two
workers, every fault) compressed into 20 s of load; it passes and prints its tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


def test_quick_soak_through_every_fault_exits_0_and_prints_the_table(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISK_")}
    env |= {"COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    args = ["--quick", "--rate", "300", "--data-dir", str(tmp_path / "soak")]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    for figure in (
        "checks answered",
        "approvals while unconfirmed",
        "violations denied (client)",
        "rows persisted (PostgreSQL)",
        "trips issued / in force",
        "worker RSS at start",
        "worker RSS at end",
    ):
        assert figure in out, out
    for phase in ("steady", "killed", "back", "postgres stopped", "redis stopped", "soak-w2"):
        assert phase in out, out
    assert "4 / 4" in out and "PASS" in out, out
