"""Render a bench result as rich tables: figures, in-process stages, tick ingestion, targets."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from risk_worker.bench.summary import CPU_PROCESSES, INPROCESS_STAGES, figure_keys


def _value(key: str, value: float) -> str:
    return f"{value:,.0f} req/s" if key.endswith("_rps") else f"{value:,.0f} µs"


def _label(key: str, tick_rate: float) -> str:
    phase, _, rest = key.partition("_")
    if phase == "seq":
        where = f"sequential, {tick_rate:,.0f} ticks/s"
    elif phase == "idle":
        where = "sequential, no ticks"
    else:
        where = f"{phase[1:]} in flight, {tick_rate:,.0f} ticks/s"
    what = {"p50_us": "p50", "p99_us": "p99", "rps": "throughput"}[rest]
    return f"{where}: {what}"


def _figures(result: dict[str, Any]) -> Table:
    cfg = result["config"]
    table = Table(
        title=(
            f"risk-worker bench: {cfg['accounts']:,} accounts × {cfg['positions']} positions, "
            f"{result['policies']}, median of {cfg['rounds']} alternating rounds"
        )
    )
    for name, justify in (("figure", "left"), ("floor (echo)", "right"), ("worker", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("worker/floor", justify="right")
    for key in figure_keys(tuple(cfg["inflight"])):
        table.add_row(
            _label(key, cfg["tick_rate"]),
            _value(key, result["floor"][key]),
            _value(key, result["worker"][key]),
            f"{result['ratios'][key]:.2f}×",
        )
    return table


_PHASES = {"seq": "sequential", "idle": "sequential, no ticks"}


def _cpu(result: dict[str, Any]) -> Table:
    cpu = result["cpu_us_per_request"]
    table = Table(title="CPU time per request, µs (floor / worker round), by process")
    table.add_column("phase")
    for name in CPU_PROCESSES:
        table.add_column(name, justify="right")
    phases = ["seq", *(f"c{k}" for k in result["config"]["inflight"]), "idle"]
    for phase in phases:
        keys = [f"{phase}_cpu_{n}_us" for n in CPU_PROCESSES]
        cells = [f"{cpu['floor'][k]:.1f} / {cpu['worker'][k]:.1f}" for k in keys]
        table.add_row(_PHASES.get(phase, f"{phase[1:]} in flight"), *cells)
    return table


def _inprocess(figures: dict[str, float], var: bool) -> Table:
    policies = "15 policies with VaR" if var else "14 policies"
    table = Table(title=f"in-process check path (same book, {policies}, GC off while timing)")
    table.add_column("stage")
    table.add_column("p50", justify="right")
    table.add_column("p99", justify="right")
    for stage in INPROCESS_STAGES:
        table.add_row(
            stage, f"{figures[f'{stage}_p50_us']:.1f} µs", f"{figures[f'{stage}_p99_us']:.1f} µs"
        )
    return table


def _ingestion(ingestion: dict[str, Any]) -> Table:
    table = Table(
        title=f"tick ingestion, one worker ({ingestion['step_seconds']:g} s per step, absorbed = "
        "every tick applied ≤ 0.1 s after the last one)"
    )
    for name in ("offered", "published", "applied while offered", "caught up after", "absorbed"):
        table.add_column(name, justify="right")
    for s in ingestion["steps"]:
        table.add_row(
            f"{s['rate']:,.0f}/s",
            f"{s['published_rate']:,.0f}/s",
            f"{s['applied_rate']:,.0f}/s",
            f"{s['catch_up_s']:.3f} s",
            "yes"
            if s["absorbed"]
            else "generator-bound"
            if s.get("generator_bound")
            else "[red]no[/red]",
        )
    return table


def _targets(targets: list[dict[str, Any]]) -> Table:
    table = Table(title="issue 6 targets")
    for name in ("target", "value", "result"):
        table.add_column(name)
    for t in targets:
        value = t["value"]
        shown = "—" if value is None else f"{value:,.2f} {t['unit']}"
        if t["met"]:
            verdict = "[green]met[/green]"
        elif value is None:
            verdict = "[red]not measured[/red]"
        else:
            verdict = (
                f"[red]missed by {t['missed_by']:,.2f} {t['unit']} "
                f"({t['missed_by_fraction']:.0%})[/red]"
            )
        table.add_row(t["target"], shown, verdict)
    return table


def var_line(var: dict[str, Any] | None) -> str:
    """The report's line saying whether VaR was on, and how."""
    if var is None:
        return "VaR off (--var: a hard VaR policy and a seeded return history)"
    return (
        f"[green]VaR on[/green]: {var['policy']}; {var['symbols']} symbols × "
        f"{var['samples_per_symbol']:,} samples every {var['sample_interval_s']} s "
        f"(min {var['min_samples']}), {var['history']}; in-process phase seeded the same"
    )


def render(result: dict[str, Any], console: Console) -> None:
    """Print every table and the notes.

    Args:
        result: what :func:`risk_worker.bench.runner.run_bench` returned.
        console: where to print.
    """
    console.print(_figures(result))
    console.print(var_line(result["var"]))
    console.print(_cpu(result))
    if result["inprocess"]:
        console.print(_inprocess(result["inprocess"], result["var"] is not None))
    ingestion = result["ingestion"]
    console.print(_ingestion(ingestion))
    saturation = ingestion["saturation_rate"]
    console.print(
        f"max ticks/s absorbed: {ingestion['max_absorbed_rate']:,.0f}; "
        + (
            f"applied {saturation:,.0f}/s when overloaded"
            if saturation is not None
            else "every offered rate was absorbed"
        )
    )
    ticks = result["ticks_during_rounds"]
    rb = result["reply_bytes"]
    console.print(
        f"worker peak RSS {result['worker_peak_rss_mb']:.1f} MiB (ingestion worker "
        f"{ingestion['peak_rss_mb']:.1f} MiB); start → /ready "
        f"{result['worker_start_to_ready_s']:.2f} s, → first answer "
        f"{result['worker_start_to_serving_s']:.2f} s, → loaded book approved "
        f"{result['worker_start_to_book_loaded_s']:.2f} s"
    )
    console.print(
        f"ticks during the rounds: {ticks['published']:,.0f} published at {ticks['rate']:,.0f}/s, "
        f"{ticks['applied']:,.0f} applied; reply bytes floor {rb['floor']:.0f} / worker "
        f"{rb['worker']:.0f}"
    )
    mark = "[green]verified[/green]" if result["verified"] else "[red]NOT verified[/red]"
    with_var = ", every approval with its post-trade 99 % VaR" if result["var"] else ""
    console.print(
        f"{mark}: {result['checks_verified']:,} worker replies carried the expected decision "
        f"(approved{with_var}, or every 50th denied by 'Max Order Notional')"
    )
    console.print(_targets(result["targets"]))
