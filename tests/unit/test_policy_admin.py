"""Policy files: TOML parsing and its refusals, the diff with the table, and its rendering."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from risk_worker.adapters.policy_admin import (
    PolicyDiff,
    PolicyFileError,
    PolicySpec,
    StoredPolicy,
    diff,
    parse_policy_file,
    render_diff,
)
from risk_worker.domain.types import Metric, Operator, PolicyType, Scope

CAP = """
[[policy]]
name = "BTC Position Cap"
type = "hard"
metric = "position_notional"
operator = "lte"
threshold = 500000
scope = "symbol"
scope_id = "BTCUSDT"
enabled = false
priority = 50
"""
LOSS = """
[[policy]]
name = "Daily Loss"
type = "soft"
metric = "daily_pnl"
operator = "gte"
threshold = -1000.5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policies.toml"
    path.write_text(text, encoding="utf-8")
    return path


def spec(name: str = "Max Account Leverage", threshold: float = 10.0, **kw: object) -> PolicySpec:
    fields: dict[str, object] = {
        "type": PolicyType.HARD,
        "metric": Metric.LEVERAGE,
        "operator": Operator.LTE,
        **kw,
    }
    return PolicySpec(name=name, threshold=threshold, **fields)  # type: ignore[arg-type]


def stored(s: PolicySpec, version: int = 1) -> StoredPolicy:
    """The row a spec would be stored as (enum columns as text, like the table)."""
    return StoredPolicy(
        id=f"id-{s.name}",
        version=version,
        name=s.name,
        type=s.type.value,
        metric=s.metric.value,
        operator=s.operator.value,
        threshold=s.threshold,
        scope=s.scope.value,
        scope_id=s.scope_id,
        enabled=s.enabled,
        priority=s.priority,
    )


def test_parse_when_file_valid_then_specs_in_file_order_with_defaults(tmp_path: Path) -> None:
    specs = parse_policy_file(write(tmp_path, CAP + LOSS))
    assert specs == [
        PolicySpec(
            "BTC Position Cap",
            PolicyType.HARD,
            Metric.POSITION_NOTIONAL,
            Operator.LTE,
            500000.0,
            Scope.SYMBOL,
            "BTCUSDT",
            enabled=False,
            priority=50,
        ),
        PolicySpec("Daily Loss", PolicyType.SOFT, Metric.DAILY_PNL, Operator.GTE, -1000.5),
    ]
    assert (specs[1].scope, specs[1].scope_id, specs[1].enabled, specs[1].priority) == (
        Scope.ACCOUNT,
        None,
        True,
        100,
    )
    assert isinstance(specs[0].threshold, float)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (LOSS + "colour = 'red'\n", ["policy #1 'Daily Loss'", "colour"]),
        (LOSS.replace("-1000.5", "nan"), ["'Daily Loss'", "threshold", "finite"]),
        (LOSS.replace("-1000.5", "-inf"), ["'Daily Loss'", "threshold", "finite"]),
        (LOSS.replace("-1000.5", "'100'"), ["'Daily Loss'", "threshold", "str"]),
        (LOSS.replace("-1000.5", "true"), ["'Daily Loss'", "threshold", "bool"]),
        (LOSS.replace("daily_pnl", "nonsense"), ["'Daily Loss'", "metric", "nonsense"]),
        (LOSS.replace('"soft"', '"fatal"'), ["'Daily Loss'", "type", "fatal"]),
        (LOSS.replace('"gte"', '">="'), ["'Daily Loss'", "operator", ">="]),
        (LOSS + "scope = 'desk'\n", ["'Daily Loss'", "scope", "desk"]),
        (LOSS + "scope_id = 'acct.1'\n", ["'Daily Loss'", "scope_id"]),
        (LOSS + "priority = 1.5\n", ["'Daily Loss'", "priority"]),
        (LOSS + "priority = 9999999999\n", ["'Daily Loss'", "priority"]),
        (LOSS + "enabled = 'yes'\n", ["'Daily Loss'", "enabled"]),
        (LOSS.replace("threshold = -1000.5\n", ""), ["'Daily Loss'", "threshold"]),
        (LOSS.replace('name = "Daily Loss"\n', ""), ["policy #1", "name"]),
        (LOSS.replace('"Daily Loss"', '""'), ["policy #1", "name", "length"]),
        (CAP + LOSS + LOSS, ["policy #3 'Daily Loss'", "duplicate"]),
        (LOSS + "threshold = 2\n", ["invalid TOML"]),
        ("", ["[[policy]]"]),
        ("policy = [1]\n", ["policy #1", "object"]),
        ("[defaults]\nenabled = true\n" + LOSS, ["unknown top-level key 'defaults'"]),
    ],
)
def test_parse_when_file_invalid_then_error_names_file_policy_and_problem(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyFileError) as info:
        parse_policy_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for part in expected:
        assert part in message, message


def test_parse_when_file_missing_then_error_names_it(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match=r"missing\.toml: cannot read"):
        parse_policy_file(tmp_path / "missing.toml")


def test_diff_when_file_and_table_overlap_then_added_changed_unchanged_untouched() -> None:
    leverage, margin, drawdown = spec(), spec("Min Margin Ratio", 1.0), spec("Max Drawdown", 0.2)
    current = [stored(leverage, 3), stored(margin), stored(drawdown)]
    cap = spec("Cap", 5e5, metric=Metric.POSITION_NOTIONAL, scope=Scope.SYMBOL, scope_id="BTC")
    tighter = spec(threshold=8.0, priority=5, enabled=False)
    d = diff(current, [cap, tighter, margin])
    assert d.added == (cap,)
    assert [(c.stored, c.desired) for c in d.changed] == [(current[0], tighter)]
    assert d.changed[0].fields == (
        ("threshold", 10.0, 8.0),
        ("enabled", True, False),
        ("priority", 100, 5),
    )
    assert d.unchanged == (current[1],)
    assert d.untouched == (current[2],)
    assert d.writes == 2


def test_diff_when_table_holds_unknown_metric_then_file_value_is_a_change() -> None:
    broken = msgspec.structs.replace(stored(spec()), metric="nonsense")
    d = diff([broken], [spec()])
    assert d.changed[0].fields == (("metric", "nonsense", Metric.LEVERAGE),)


def test_diff_when_file_equals_table_then_nothing_to_write() -> None:
    specs = [spec(), spec("Cap", 5e5, scope=Scope.SYMBOL, scope_id="ETHUSDT")]
    d = diff([stored(s, 7) for s in specs], specs)
    assert (d.added, d.changed, d.untouched, len(d.unchanged), d.writes) == ((), (), (), 2, 0)


def test_render_diff_when_every_kind_present_then_one_line_each() -> None:
    leverage, drawdown = spec(), spec("Max Drawdown", 0.2)
    cap = spec("Cap", 5e5, metric=Metric.POSITION_NOTIONAL, scope=Scope.SYMBOL, scope_id="BTC")
    loss = spec("Loss", -1000.5, type=PolicyType.SOFT, metric=Metric.DAILY_PNL, enabled=False)
    d = diff([stored(leverage), stored(drawdown)], [cap, loss, spec(threshold=8.0, scope_id="A")])
    assert render_diff(d) == [
        "+ add Cap: hard position_notional lte 500000, scope symbol/BTC, priority 100",
        "+ add Loss: soft daily_pnl lte -1000.5, scope account, priority 100, disabled",
        "~ change Max Account Leverage: threshold 10 → 8, scope_id none → A",
        "= unchanged 0",
        "untouched (in the table, not in the file; never deleted): Max Drawdown",
    ]


def test_render_diff_when_nothing_changes_then_counts_unchanged() -> None:
    d = PolicyDiff(added=(), changed=(), unchanged=(stored(spec()),), untouched=())
    assert render_diff(d) == ["= unchanged 1"]


def test_parse_when_order_level_control_metrics_then_accepted(tmp_path: Path) -> None:
    text = "".join(
        f'[[policy]]\nname = "{metric}"\ntype = "hard"\nmetric = "{metric}"\n'
        f'operator = "lte"\nthreshold = 5\nscope = "{scope}"\n\n'
        for metric, scope in (
            ("price_deviation", "symbol"),
            ("order_rate", "strategy"),
            ("order_equity_fraction", "account"),
            ("open_orders", "account"),
        )
    )
    specs = parse_policy_file(write(tmp_path, text))
    assert [s.metric for s in specs] == [
        Metric.PRICE_DEVIATION,
        Metric.ORDER_RATE,
        Metric.ORDER_EQUITY_FRACTION,
        Metric.OPEN_ORDERS,
    ]
