"""Historical VaR and expected shortfall (issue 13): the sampling rules and the quantiles,
checked against an independent numpy computation on the recorded Coinbase bars."""

from __future__ import annotations

import csv
import math
import random
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from risk_worker.devstack.replay import read_ticks
from risk_worker.domain.returns import ReturnHistory
from risk_worker.domain.var import TOLERANCE, historical_var
from risk_worker.domain.var_result import NOTHING_HELD, VarResult

MIN = 60_000
BARS = "coinbase_1m_bars_btcusd_ethusd.csv"


def history_of(prices: dict[str, list[tuple[int, float]]], window: int = 1_440) -> ReturnHistory:
    history = ReturnHistory(MIN, window)
    for symbol, rows in prices.items():
        for minute, price in rows:
            history.record(symbol, minute * MIN, price)
    return history


def test_return_when_a_boundary_is_missing_then_none_across_the_gap() -> None:
    history = history_of({"X": [(0, 100.0), (1, 110.0), (3, 99.0), (4, 99.0)]})

    growth = history.growth("X")

    assert sorted(growth) == [1, 4]
    assert growth[1] == pytest.approx(0.1)
    assert growth[4] == pytest.approx(0.0)


def test_record_when_more_than_window_samples_then_keeps_the_latest() -> None:
    history = history_of({"X": [(m, 100.0 + m) for m in range(10)]}, window=4)

    assert [b for b, _ in history.samples("X")] == [6 * MIN, 7 * MIN, 8 * MIN, 9 * MIN]
    assert not history.record("X", 2 * MIN, 1.0)  # older than the window
    assert not history.record("X", 20 * MIN + 1, 1.0)  # not a boundary


def test_scenarios_when_symbols_have_different_gaps_then_only_common_boundaries() -> None:
    history = history_of(
        {"A": [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0)], "B": [(1, 1.0), (2, 1.0), (4, 3.0)]}
    )

    symbols, vectors, n, _, _, largest = history.aligned(("A", "B"))

    assert (symbols, n) == (("A", "B"), 1)  # A has returns at 1, 2, 3; B only at 2
    assert vectors == ([pytest.approx(1.0)], [pytest.approx(0.0)])
    assert largest == (pytest.approx(1.0), pytest.approx(0.0))  # max |e^r − 1| of each


def test_var_when_nothing_held_then_zero() -> None:
    assert historical_var({"X": 0.0}, ReturnHistory(), 120, 86_400) is NOTHING_HELD


def test_var_when_fewer_returns_than_min_samples_then_null_naming_the_symbol() -> None:
    rows = [(m, 100.0 + m) for m in range(200)]
    history = history_of({"A": rows, "B": rows[:50]})

    result = historical_var({"A": 1_000.0, "B": -500.0}, history, 120, 86_400)

    assert (result.var_95, result.var_99, result.es_97_5) == (None, None, None)
    assert result.lacking == ("B",)
    assert result.var_99_fraction(10_000.0) is None
    assert historical_var({"A": 1_000.0}, history, 120, 86_400).var_99 is not None


def test_var_on_a_known_series_then_quantiles_by_the_issue_rules() -> None:
    # 100 returns: growth −0.100, −0.099, ..., −0.001 (one each), so P&L[k] = −(100 − k)
    prices = [(0, 1.0)]
    for k in range(100):
        prices.append((k + 1, prices[-1][1] * (1.0 - (100 - k) / 1000.0)))
    history = history_of({"X": prices})

    result = historical_var({"X": 1_000.0}, history, 100, 60)  # horizon = interval: scale 1

    assert result.scenarios == 100
    assert result.var_95 == pytest.approx(95.0)  # −P&L[5]
    assert result.var_99 == pytest.approx(99.0)  # −P&L[1]
    assert result.es_97_5 == pytest.approx((100 + 99 + 98) / 3)  # ⌈2.5⌉ = 3 worst
    scaled = historical_var({"X": 1_000.0}, history, 100, 60 * 16)
    assert scaled.var_99 == pytest.approx(99.0 * 4)
    assert result.var_99_fraction(990.0) == pytest.approx(0.1)


def test_var_when_every_scenario_gains_then_floored_at_zero() -> None:
    history = history_of({"X": [(m, 100.0 * 1.01**m) for m in range(150)]})

    result = historical_var({"X": 1_000.0}, history, 120, 86_400)

    assert (result.var_95, result.var_99, result.es_97_5) == (0.0, 0.0, 0.0)
    assert result.var_99_fraction(1_000.0) == 0.0


def _numpy_var(
    path: Path, exposure: dict[str, float], window: int, interval_s: int, horizon_s: int
) -> tuple[float, float, float, int]:
    """The issue's rules written again with numpy, reading the CSV with the csv module."""
    rows: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            at = datetime.fromisoformat(row["ts_utc"].replace("Z", "+00:00")).timestamp()
            rows.setdefault(row["symbol"], []).append((int(at) // interval_s, float(row["close"])))
    growth: dict[str, dict[int, float]] = {}
    for symbol in exposure:
        kept = sorted(dict(rows[symbol]).items())[-window:]
        slots = np.array([s for s, _ in kept])
        closes = np.array([p for _, p in kept])
        consecutive = np.diff(slots) == 1
        r = np.log(closes[1:] / closes[:-1])
        ends = slots[1:][consecutive].tolist()
        growth[symbol] = dict(zip(ends, (np.exp(r) - 1.0)[consecutive].tolist(), strict=True))
    common = sorted(set.intersection(*(set(g) for g in growth.values())))[-window:]
    matrix = np.array([[growth[s][b] for b in common] for s in exposure])
    pnl = np.sort(np.array(list(exposure.values())) @ matrix)
    n = len(pnl)
    scale = np.sqrt(horizon_s / interval_s)
    var95 = max(0.0, -pnl[int(np.floor(0.05 * n))]) * scale
    var99 = max(0.0, -pnl[int(np.floor(0.01 * n))]) * scale
    es = max(0.0, -np.mean(pnl[: int(np.ceil(0.025 * n))])) * scale
    return float(var95), float(var99), float(es), n


@pytest.mark.parametrize(
    ("exposure", "window"),
    [
        ({"BTCUSD": 9_500.0, "ETHUSD": -3_200.0}, 1_440),
        ({"BTCUSD": -20_000.0}, 1_440),
        ({"ETHUSD": 12_000.0}, 1_440),
        ({"BTCUSD": 5_000.0, "ETHUSD": 7_000.0}, 5_000),
    ],
)
def test_var_on_recorded_bars_then_matches_numpy_to_1e_9(
    shared_data_dir: Path, exposure: dict[str, float], window: int
) -> None:
    path = shared_data_dir / BARS
    history = ReturnHistory(MIN, window)
    for tick in read_ticks(path):
        assert history.record(tick.symbol, tick.timestamp, tick.price)

    result = historical_var(exposure, history, 120, 86_400)
    var95, var99, es, n = _numpy_var(path, exposure, window, 60, 86_400)

    assert result.scenarios == n > 1_000
    assert result.var_95 is not None and result.var_99 is not None and result.es_97_5
    assert math.isclose(result.var_95, var95, rel_tol=1e-9)
    assert math.isclose(result.var_99, var99, rel_tol=1e-9)
    assert math.isclose(result.es_97_5, es, rel_tol=1e-9)
    assert result.var_99 > result.var_95 > 0.0


def test_carry_when_ticks_cross_boundaries_then_last_mark_at_or_before_each_is_sampled() -> None:
    history = ReturnHistory(MIN, 100)
    history.carry("X", 100.0, 30_000, 125_000)  # in force at 60 s and 120 s

    history.carry("X", 101.0, 125_000, 180_000)  # replaced before 180 s: nothing
    history.carry("X", 102.0, 180_000, 180_001)  # applied exactly at 180 s
    history.carry("X", 103.0, 180_000, 180_001)  # a later mark at the same ms wins
    history.carry("X", 103.0, 180_000, 300_001)  # and holds at 240 s and 300 s

    assert history.samples("X") == [
        (60_000, 100.0),
        (120_000, 100.0),
        (180_000, 103.0),
        (240_000, 103.0),
        (300_000, 103.0),
    ]


def test_aligned_when_a_symbol_gets_a_sample_then_rebuilt_and_others_kept() -> None:
    history = history_of({"A": [(m, 1.0 + m) for m in range(5)], "B": [(0, 1.0), (1, 2.0)]})
    a_only = history.aligned(("A",))
    b_only = history.aligned(("B",))

    history.record("A", 5 * MIN, 7.0)
    history.refresh()

    assert history.aligned(("B",)) is b_only
    assert history.aligned(("A",)) is not a_only
    assert history.aligned(("A",))[2] == 5


def test_var_when_an_account_repeats_with_changed_exposures_then_same_as_a_full_computation() -> (
    None
):
    rng = random.Random(3)
    rows = {s: [(m, 100.0 * math.exp(rng.gauss(0, 0.01) * m)) for m in range(300)] for s in "ABC"}
    history = history_of(rows)
    exposure = {"A": 5_000.0, "B": -2_000.0, "C": 700.0}
    for step in range(40):
        symbol = "ABC"[step % 3]
        exposure[symbol] *= rng.choice([0.5, 1.3, -1.0, 3.0, 1.0 + 1.01 * TOLERANCE])
        cached = historical_var(exposure, history, 120, 86_400, "acct")
        full = historical_var(exposure, history, 120, 86_400)
        for got, want in zip(
            (cached.var_95, cached.var_99, cached.es_97_5),
            (full.var_95, full.var_99, full.es_97_5),
            strict=True,
        ):
            assert got is not None and want is not None
            assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-9)
    assert "acct" in history.scenario_cache


def _triple(result: VarResult) -> tuple[float, float, float]:
    assert result.var_95 is not None and result.var_99 is not None
    assert result.es_97_5 is not None
    return result.var_95, result.var_99, result.es_97_5


def _random_history(seed: int, symbols: str) -> ReturnHistory:
    rng = random.Random(seed)
    rows: dict[str, list[tuple[int, float]]] = {}
    for s in symbols:
        price, rows[s] = 100.0, []
        for m in range(300):
            rows[s].append((m, price))
            price *= math.exp(rng.gauss(0, 0.01))
    return history_of(rows)


def test_var_when_exposures_drift_below_the_tolerance_then_conservative_within_the_bound() -> None:
    history = _random_history(5, "ABCDE")
    rng = random.Random(8)
    scale = math.sqrt(86_400 / 60)
    drifts = [1e-4, TOLERANCE * 0.99, 2 * TOLERANCE, 0.05, -1.0, 0.0]  # -1.0: a sign flip
    for trial in range(30):
        exposure = {s: rng.uniform(-10_000.0, 10_000.0) for s in "ABCDE"}
        historical_var(exposure, history, 120, 86_400, "acct")  # a first, full computation
        for _ in range(8):
            held, vectors = history.aligned(tuple(sorted(exposure)))[:2]
            before = list(history.scenario_cache["acct"][1])
            bound = 0.0
            for k, s in enumerate(held):
                drift = rng.choice(drifts)
                exposure[s] *= -1.0 if drift == -1.0 else 1.0 + rng.choice([-1, 1]) * drift
                if abs(exposure[s] - before[k]) <= TOLERANCE * abs(before[k]):
                    bound += abs(exposure[s] - before[k]) * max(map(abs, vectors[k]))
            got = _triple(historical_var(exposure, history, 120, 86_400, "acct"))
            want = _triple(historical_var(exposure, history, 120, 86_400))
            for approx, exact in zip(got, want, strict=True):
                eps = 1e-9 * max(1.0, exact)
                assert exact - eps <= approx <= exact + 2 * bound * scale + eps, trial
            kept = history.scenario_cache["acct"][1]
            for k, s in enumerate(held):  # passed over: the new weight; else still the old
                passed = abs(exposure[s] - before[k]) > TOLERANCE * abs(before[k])
                assert kept[k] == (exposure[s] if passed else before[k])
                assert (kept[k] > 0) == (exposure[s] > 0)  # a sign flip is always passed


def test_var_when_small_drifts_compound_then_passed_over_once_past_the_tolerance() -> None:
    history = _random_history(6, "AB")
    exposure = {"A": 5_000.0, "B": -3_000.0}
    exact = _triple(historical_var(exposure, history, 120, 86_400, "acct"))

    exposure["A"] *= 1.0 + TOLERANCE / 3  # below: not passed over, conservative
    drifted = _triple(historical_var(exposure, history, 120, 86_400, "acct"))
    assert history.scenario_cache["acct"][1] == [5_000.0, -3_000.0]
    assert all(d >= e for d, e in zip(drifted, exact, strict=True))
    assert drifted != exact

    exposure["A"] *= 1.0 + TOLERANCE / 3  # two thirds of it from 5,000: still not
    historical_var(exposure, history, 120, 86_400, "acct")
    assert history.scenario_cache["acct"][1] == [5_000.0, -3_000.0]
    exposure["A"] *= 1.0 + TOLERANCE / 3  # (1 + t/3)³ − 1 > t from the weight held: passed
    got = _triple(historical_var(exposure, history, 120, 86_400, "acct"))
    assert history.scenario_cache["acct"][1] == [exposure["A"], -3_000.0]
    full = _triple(historical_var(exposure, history, 120, 86_400))
    for a, b in zip(got, full, strict=True):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


def test_var_when_tolerance_is_zero_then_every_change_passed_over() -> None:
    history = _random_history(7, "AB")
    exposure = {"A": 5_000.0, "B": -3_000.0}
    historical_var(exposure, history, 120, 86_400, "acct", 0.0)
    exposure["A"] *= 1.0 + 1e-6

    got = _triple(historical_var(exposure, history, 120, 86_400, "acct", 0.0))

    full = _triple(historical_var(exposure, history, 120, 86_400))
    for a, b in zip(got, full, strict=True):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
