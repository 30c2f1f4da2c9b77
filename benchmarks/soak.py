"""Soak: 2 workers on a 3-node NATS cluster (R3) with PostgreSQL and Redis, under checks, ticks
and fills for ``--minutes``, through a fault schedule; prints the figures (issue 14, part 4).

    .venv/bin/python benchmarks/soak.py                  # 10 minutes
    .venv/bin/python benchmarks/soak.py --quick          # ~20 s, faults compressed

Faults, spread over the run: a NATS node killed (-9; the one leading most of the JetStream meta
group, the bucket and the audit stream) and restarted, PostgreSQL stopped (30 s) then started,
Redis stopped then started, a worker SIGKILLed and restarted. Exits 1 when a check was approved
while its worker's trading state was unconfirmed, when the violation rows in PostgreSQL do not
match the denials, or when a trip is not in force. The servers' stores and the worker logs stay
in ``--data-dir`` (a temporary one by default).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from risk_worker.bench.soak_report import render
from risk_worker.bench.soak_run import SoakConfig, run_soak


def _config(args: argparse.Namespace) -> SoakConfig:
    seconds = 20.0 if args.quick else args.minutes * 60.0
    outage = 30.0 if seconds >= 300 else max(1.5, seconds / 10)
    return SoakConfig(
        seconds=seconds,
        check_rate=args.rate,
        tick_rate=args.tick_rate,
        fill_rate=args.fill_rate,
        accounts=args.accounts,
        outage_s=outage,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when it passed, 1 when it failed, 2 when it could not run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load")
    parser.add_argument("--quick", action="store_true", help="20 s, faults compressed")
    parser.add_argument("--rate", type=float, default=500.0, help="checks per second")
    parser.add_argument("--tick-rate", type=float, default=2000.0, help="ticks per second")
    parser.add_argument("--fill-rate", type=float, default=20.0, help="fills per second")
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--data-dir", type=Path, default=None, help="kept after the run")
    args = parser.parse_args(argv)
    console = Console()
    cfg = _config(args)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="risk-soak-"))
    started = time.monotonic()

    def say(line: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:7.1f} s[/dim] {line}")

    try:
        result = asyncio.run(run_soak(cfg, data_dir, say))
    except Exception as exc:  # a soak that could not run: say why, exit 2
        console.print_exception(max_frames=8)
        console.print(f"[red]the soak could not run:[/red] {exc!r}")
        return 2
    failed = render(result, console)
    say(f"done; logs in {data_dir / 'logs'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
