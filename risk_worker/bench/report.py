"""Render a bench result as rich tables: figures, in-process stages, tick ingestion, targets."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from risk_worker.bench.summary import CPU_PROCESSES, INPROCESS_STAGES, figure_keys, phases


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
    n = result["instances"]["count"]
    workers = "worker" if n == 1 else f"{n} workers"
    for name, justify in (("figure", "left"), ("floor (echo)", "right"), (workers, "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column(f"{workers}/floor", justify="right")
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
    n = result["instances"]["count"]
    summed = "" if n == 1 else f"; the worker round's responder is the sum over its {n} workers"
    table = Table(title=f"CPU time per request, µs (floor / worker round), by process{summed}")
    table.add_column("phase")
    for name in CPU_PROCESSES:
        table.add_column(name, justify="right")
    for phase in phases(tuple(result["config"]["inflight"])):
        keys = [f"{phase}_cpu_{n}_us" for n in CPU_PROCESSES]
        cells = [f"{cpu['floor'][k]:.1f} / {cpu['worker'][k]:.1f}" for k in keys]
        table.add_row(_PHASES.get(phase, f"{phase[1:]} in flight"), *cells)
    return table


def _scale_out(result: dict[str, Any]) -> Table:
    inst = result["instances"]
    cpu = result["cpu_us_per_request"]["worker"]
    bg = result["background_cpu_cores"]["worker"]
    who = f"{inst['count']} workers" if inst["count"] > 1 else "one worker"
    table = Table(
        title=f"{who} ({', '.join(inst['ids'])}): CPU per check summed over the workers, and "
        f"net of their background ({bg['responder']:.2f} cores with ticks and no checks); "
        "forwarded = sent on by the receiving instance to the account's owner"
    )
    for name in ("phase", "throughput", "p50", "workers' CPU/check", "net", "server CPU/check"):
        table.add_column(name, justify="left" if name == "phase" else "right")
    table.add_column("forwarded", justify="right")
    worker = result["worker"]
    for phase in phases(tuple(result["config"]["inflight"])):
        rps = worker[f"{phase}_rps"]
        per_check = cpu[f"{phase}_cpu_responder_us"]
        table.add_row(
            _PHASES.get(phase, f"{phase[1:]} in flight"),
            f"{rps:,.0f}/s",
            f"{worker[f'{phase}_p50_us']:,.0f} µs",
            f"{per_check:.1f} µs",
            # idle: the ticks stopped, that background was not measured
            f"{per_check - bg['responder'] * 1e6 / rps:.1f} µs" if rps and phase != "idle" else "—",
            f"{cpu[f'{phase}_cpu_server_us']:.1f} µs",
            f"{inst['forwarded_fraction'][phase]:.1%}",
        )
    return table


def hop_line(inst: dict[str, Any]) -> str:
    """The report's lines on the forwarding hop and how the checks were spread."""
    spread = ", ".join(
        f"{wid} {n:,.0f}" for wid, n in zip(inst["ids"], inst["decided"], strict=True)
    )
    hop = inst["hop"]
    if not hop:
        return f"one worker instance ({spread} checks; --instances N for more): nothing forwarded"
    head = (
        f"checks decided per instance: {spread}; membership converged "
        f"{inst['start_to_converged_s']:.2f} s after start"
    )
    if "hop_cost_p50_us" not in hop:
        return head + "; forwarding hop: not measured (one kind of check got no sample)"
    return (
        f"{head}\nforwarding hop (sequential, no ticks, each check classified by "
        f"the receivers' forwarded counters): forwarded {hop['hop_forwarded_n']:.0f} checks p50 "
        f"{hop['hop_forwarded_p50_us']:,.0f} µs (mean {hop['hop_forwarded_mean_us']:,.0f}), "
        f"answered where received {hop['hop_local_n']:.0f} p50 {hop['hop_local_p50_us']:,.0f} "
        f"µs (mean {hop['hop_local_mean_us']:,.0f}): the hop costs "
        f"{hop['hop_cost_p50_us']:+,.0f} µs p50, {hop['hop_cost_mean_us']:+,.0f} µs mean"
    )


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
    console.print(_scale_out(result))
    console.print(hop_line(result["instances"]))
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
