"""The soak's tables (rich) and its verdict: what must hold for the run to pass."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from risk_worker.bench.soak_run import SoakResult

IN_FORCE = "emergency_stop_active"


def audit_figures(result: SoakResult) -> tuple[int, int, int, int, int]:
    """(violations denied as the client counted them, rows for them, rows missing, rows
    doubled, rows for orders that got no reply or were not denied)."""
    denied, rows = result.tally.denied, result.rows
    persisted = sum(min(rows.get(k, 0), n) for k, n in denied.items())
    missing = sum(max(0, n - rows.get(k, 0)) for k, n in denied.items())
    doubled = sum(max(0, rows.get(k, 0) - n) for k, n in denied.items())
    other = sum(n for k, n in rows.items() if k not in denied)
    return sum(denied.values()), persisted, missing, doubled, other


def failures(result: SoakResult) -> list[str]:
    """Why the run fails (empty: it passed): an approval while unconfirmed, rows that do not
    match the denials (missing or doubled), a trip not in force or not written."""
    out: list[str] = []
    unconfirmed = sum(result.approvals_unconfirmed.values())
    if unconfirmed:
        out.append(f"{unconfirmed} approval(s) while a worker's trading state was unconfirmed")
    denials, _, missing, doubled, _ = audit_figures(result)
    if missing or doubled:
        out.append(f"violation rows ≠ denials ({denials}): {missing} missing, {doubled} doubled")
    not_in_force = [a for a, why in result.trips.items() if why != IN_FORCE]
    if not_in_force:
        out.append(f"trips not in force at the end: {', '.join(not_in_force)}")
    out += [f"trip not written: {why}" for why in result.trip_failures]
    return out


def _mib(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f} MiB" for k, v in values.items())


def summary_table(result: SoakResult) -> Table:
    """The run's figures: one row each."""
    t, cfg = result.tally, result.config
    table = Table(title="Soak", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("note")
    table.add_row(
        "load", f"{cfg.seconds:.0f} s",
        f"{cfg.check_rate:.0f} checks/s, {result.ticks / max(cfg.seconds, 1e-9):.0f} ticks/s, "
        f"{result.fills} fills, {cfg.workers} workers, {cfg.accounts} accounts",
    )  # fmt: skip
    table.add_row("NATS node killed", result.killed_node.split(" ", 1)[0], result.killed_node)
    table.add_row("checks sent", f"{t.sent:,}", "")
    table.add_row("checks answered", f"{t.answered:,}", f"{t.sent - t.answered:,} unanswered (1 s)")
    seconds = {k: f"{v.seconds:.1f} s" for k, v in result.unconfirmed.items()}
    table.add_row(
        "approvals while unconfirmed", str(sum(result.approvals_unconfirmed.values())),
        "must be 0; unconfirmed per /ready: " + ", ".join(f"{k} {v}" for k, v in seconds.items()),
    )  # fmt: skip
    denials, persisted, missing, doubled, other = audit_figures(result)
    table.add_row("violations denied (client)", f"{denials:,}", "")
    table.add_row(
        "rows persisted (PostgreSQL)", f"{persisted:,}",
        f"{missing} missing, {doubled} doubled; {other} for unanswered orders; "
        f"sink caught up in {result.sink_wait_s:.1f} s",
    )  # fmt: skip
    in_force = sum(1 for why in result.trips.values() if why == IN_FORCE)
    issued = len(result.trips) + len(result.trip_failures)
    table.add_row(
        "trips issued / in force", f"{issued} / {in_force}", "account HALTs, one per fault"
    )
    table.add_row("worker RSS at start", _mib(result.rss_start), "VmRSS after the book loaded")
    restarted = ", ".join(f"{k} restarted {n}x" for k, n in result.restarts.items() if n)
    table.add_row("worker RSS at end", _mib(result.rss_end), restarted)
    table.add_row("wrong approvals", str(t.deny_order_approved), "policy-breaking orders approved")
    return table


def phase_table(result: SoakResult) -> Table:
    """Per phase: when it began, how long, checks answered, approved, unanswered, p50, p99."""
    table = Table(title="Check latency per phase (client round trip)")
    for name in ("phase", "from s", "length s", "answered", "approved", "unanswered"):
        table.add_column(name, justify="left" if name == "phase" else "right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    phases = result.timeline.phases
    origin = phases[0].start if phases else 0.0
    for phase in phases:
        if phase.name == "end":
            continue
        answered, approved, unanswered, p50, p99 = phase.summary()
        table.add_row(
            phase.name, f"{phase.start - origin:.0f}", f"{phase.end - phase.start:.1f}",
            f"{answered:,}", f"{approved:,}", f"{unanswered:,}", f"{p50:.2f}", f"{p99:.2f}",
        )  # fmt: skip
    return table


def reasons_table(result: SoakResult) -> Table:
    """How the denials and non-replies split ("expected" ones are the policy-breaking orders)."""
    table = Table(title="Denials and non-replies by reason")
    table.add_column("reason")
    table.add_column("checks", justify="right")
    for reason, count in result.tally.reasons.most_common():
        table.add_row(reason, f"{count:,}")
    return table


def render(result: SoakResult, console: Console) -> list[str]:
    """Print the tables and the verdict; the failures (empty when the run passed)."""
    for table in (summary_table(result), phase_table(result), reasons_table(result)):
        console.print(table)
    failed = failures(result)
    for line in failed:
        console.print(f"[red]FAIL[/red] {line}")
    if not failed:
        console.print(
            "[green]PASS[/green] no approval while unconfirmed; rows = denials; trips in force"
        )
    return failed
