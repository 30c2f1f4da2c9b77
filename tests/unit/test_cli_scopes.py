"""The scope options of `risk-worker emergency` and `restrict`: one scope at a time, except an
account and a strategy together for `emergency status` and `emergency clear` (the workers'
automatic trip of a strategy on an account)."""

from __future__ import annotations

import pytest
import typer

from risk_worker.cli.main import _scope_name
from risk_worker.cli.restrict import one_scope
from risk_worker.domain.trading_state import GLOBAL_KEY, account_key, auto_key, auto_strategy_key


@pytest.mark.parametrize(
    ("account", "strategy", "symbol", "account_strategy", "ok"),
    [
        (None, None, None, False, True),
        ("A1", None, None, False, True),
        ("A1", "s1", None, False, False),  # trip: only the workers trip a strategy of an account
        ("A1", "s1", None, True, True),
        ("A1", None, "BTCUSDT", True, False),
        (None, "s1", "BTCUSDT", True, False),
        ("A1", "s1", "BTCUSDT", True, False),
        ("A.1", None, None, False, False),  # not an identifier
        ("A1", "s.1", None, True, False),
    ],
)
def test_one_scope_when_options_combined_then_exit_2_unless_allowed(
    account: str | None,
    strategy: str | None,
    symbol: str | None,
    account_strategy: bool,
    ok: bool,
) -> None:
    if ok:
        one_scope(account, strategy, symbol, account_strategy)
        return
    with pytest.raises(typer.Exit) as raised:
        one_scope(account, strategy, symbol, account_strategy)
    assert raised.value.exit_code == 2


@pytest.mark.parametrize(
    ("key", "name"),
    [
        (GLOBAL_KEY, "global"),
        (account_key("A1"), "account A1"),
        (auto_key("A1"), "auto A1"),
        (auto_strategy_key("A1", "s1"), "strategy s1 of account A1 (automatic)"),
    ],
)
def test_scope_name_when_key_then_readable(key: str, name: str) -> None:
    assert _scope_name(key) == name
