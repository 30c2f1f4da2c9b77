"""``risk-worker restrict add|remove|list``: the restricted list, and the scope options the
``emergency`` commands share (issue 12).

A risk-increasing order on a restricted symbol is denied ``restricted_symbol``; reducing
orders pass. Entries live in the ``risk_control`` bucket, written by operators only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import nats.errors
import typer
from nats.aio.client import Client
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from risk_worker.adapters import operator
from risk_worker.adapters import restricted_list as rl
from risk_worker.cli.common import console, err, run_async, settings_or_exit
from risk_worker.domain.restricted import Restriction, parse_restricted_key
from risk_worker.errors import RiskWorkerError, StaleRevisionError

T = TypeVar("T")

restrict = typer.Typer(
    no_args_is_help=True,
    help="The restricted list: risk-increasing orders on these symbols are denied.",
)


def one_scope(
    account: str | None,
    strategy: str | None,
    symbol: str | None,
    account_strategy: bool = False,
) -> None:
    """Exit 2 unless at most one of the scope options is given, each a valid identifier;
    with ``account_strategy``, ``--account`` and ``--strategy`` together are one scope too (the
    workers' automatic trip of a strategy on an account)."""
    given = [name for name, v in (("--account", account), ("--strategy", strategy),
                                  ("--symbol", symbol)) if v is not None]  # fmt: skip
    try:
        if given == ["--account", "--strategy"] and not account_strategy:
            raise ValueError(
                "one scope at a time: --account and --strategy given (a strategy of one "
                "account is tripped by the workers only; `emergency status` and `emergency "
                "clear` take both)"
            )
        if len(given) > 1 and given != ["--account", "--strategy"]:
            raise ValueError(f"one scope at a time: {' and '.join(given)} given")
        for what, value in (("account", account), ("strategy", strategy), ("symbol", symbol)):
            rl.check_identifier(what, value)
    except ValueError as exc:
        err.print(f"[red]bad option:[/red] {exc}")
        raise typer.Exit(2) from None


def scope_label(account: str | None, strategy: str | None, symbol: str | None) -> str:
    """``account X``, ``strategy X``, ``symbol X`` or ``global`` (the first given)."""
    for name, value in (("account", account), ("strategy", strategy), ("symbol", symbol)):
        if value is not None:
            return f"{name} {value}"
    return "global"


def _bucket_op(work: Callable[[Client, str], Coroutine[Any, Any, T]]) -> T:
    settings = settings_or_exit()

    async def go() -> T:
        nc = await operator.connect(settings.nats_url, auth=settings.nats_auth)
        try:
            return await work(nc, settings.kv_bucket)
        finally:
            await nc.close()

    try:
        return run_async(go())
    except ValueError as exc:
        err.print(f"[red]bad input:[/red] {exc}")
        raise typer.Exit(2) from None
    except StaleRevisionError as exc:
        err.print(f"[red]not removed:[/red] {exc}")
        raise typer.Exit(1) from None
    except (OSError, RiskWorkerError, nats.errors.Error) as exc:
        err.print(f"[red]failed:[/red] {escape(repr(exc))}")
        raise typer.Exit(2) from None


@restrict.command("add")
def restrict_add(
    symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTCUSDT.")],
    reason: Annotated[str, typer.Option(help="Why (shown in every denial).")],
    by: Annotated[str, typer.Option(help="Who (recorded).")],
    account: Annotated[str | None, typer.Option(help="One account; all if omitted.")] = None,
) -> None:
    """Restrict SYMBOL: its risk-increasing orders are denied restricted_symbol."""
    one_scope(account, None, symbol)
    revision = _bucket_op(lambda nc, b: rl.restrict(nc, b, symbol, reason, by, account))
    console.print(f"{symbol} restricted ({_whom(account)}) (revision {revision})")


@restrict.command("remove")
def restrict_remove(
    symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTCUSDT.")],
    by: Annotated[str, typer.Option(help="Who (recorded in the bucket's history).")],
    account: Annotated[str | None, typer.Option(help="One account; all if omitted.")] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "",
) -> None:
    """Lift the restriction of SYMBOL (compare-and-set on the revision read). A global
    restriction and an account's are separate entries."""
    one_scope(account, None, symbol)
    revision = _bucket_op(lambda nc, b: rl.unrestrict(nc, b, symbol, by, account, reason))
    if revision is None:
        console.print(f"{symbol} was not restricted ({_whom(account)})")
    else:
        console.print(f"{symbol} no longer restricted ({_whom(account)}) (revision {revision})")


@restrict.command("list")
def restrict_list() -> None:
    """Show the restricted list: symbol, scope, reason, who, when, revision."""
    render_restricted(console, _bucket_op(rl.restrictions))


def _whom(account: str | None) -> str:
    return "all accounts" if account is None else f"account {account}"


async def gather_restricted(nc: Client, bucket: str) -> list[tuple[str, Restriction, int]]:
    """The restricted list for ``risk-worker status`` (see :func:`rl.restrictions`)."""
    return await rl.restrictions(nc, bucket)


def render_restricted(out: Console, entries: list[tuple[str, Restriction, int]]) -> None:
    """Print the restricted list as a table (an empty list says so).

    Reason and who are the operators' own words: printed as written, never read as rich markup.
    """
    table = Table(
        "symbol", "scope", "reason", "by", "at (UTC)", "revision",
        title=f"restricted list ({len(entries)})",
    )  # fmt: skip
    for key, value, revision in entries:
        parsed = parse_restricted_key(key)
        account, symbol = parsed if parsed is not None else (None, key)
        at = dt.datetime.fromtimestamp(value.at / 1000, tz=dt.UTC) if value.at else None
        table.add_row(
            escape(symbol),
            _whom(account),
            escape(value.reason),
            escape(value.by),
            at.strftime("%Y-%m-%d %H:%M:%S") if at else "",
            str(revision),
        )
    out.print(table)
