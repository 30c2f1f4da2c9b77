"""Render a bench result as a rich table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from risk_worker.bench.runner import figure_keys


def _value(key: str, value: float) -> str:
    return f"{value:,.0f} req/s" if key.endswith("_rps") else f"{value:,.0f} µs"


def _label(key: str) -> str:
    phase, _, rest = key.partition("_")
    where = "sequential" if phase == "seq" else f"{phase[1:]} in flight"
    what = {"p50_us": "p50", "p99_us": "p99", "rps": "throughput"}[rest]
    return f"{where} {what}"


def render(result: dict[str, Any], console: Console) -> None:
    """Print the figures table (medians over rounds, ratio worker/floor) and the notes.

    Args:
        result: what :func:`risk_worker.bench.runner.run_bench` returned.
        console: where to print.
    """
    cfg = result["config"]
    table = Table(
        title=(
            f"risk-worker bench: {cfg['accounts']} accounts × {cfg['positions']} positions, "
            f"median of {cfg['rounds']} alternating rounds"
        )
    )
    table.add_column("figure")
    table.add_column("floor (echo)", justify="right")
    table.add_column("worker", justify="right")
    table.add_column("worker/floor", justify="right")
    for key in figure_keys(tuple(cfg["inflight"])):
        table.add_row(
            _label(key),
            _value(key, result["floor"][key]),
            _value(key, result["worker"][key]),
            f"{result['ratios'][key]:.2f}×",
        )
    console.print(table)
    rb = result["reply_bytes"]
    console.print(
        f"worker peak RSS {result['worker_peak_rss_mb']:.1f} MiB; start → serving "
        f"{result['worker_start_to_serving_s']:.2f} s, start → loaded book approved "
        f"{result['worker_start_to_ready_s']:.2f} s"
    )
    console.print(
        f"reply bytes floor {rb['floor']:.0f} / worker {rb['worker']:.0f}; policies: "
        f"{result['policies']}; ticks: {result['ticks']}"
    )
    mark = "[green]verified[/green]" if result["verified"] else "[red]NOT verified[/red]"
    console.print(f"{mark}: {result['checks_verified']:,} worker replies approved and matched")
