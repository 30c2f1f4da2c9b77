"""``RiskEngine.set_marks`` (a batch, the common case inline) does exactly what ``set_mark`` does
tick by tick: the same results, marks, suspect levels and VaR samples (issue 16)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risk_worker.domain.engine import RiskEngine
from risk_worker.domain.marks import HeldTick
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.types import TickResult
from risk_worker.domain.var_result import VarConfig

T0 = 1_700_000_000_000
STEP = 1_000
"""The VaR sample interval (ms): short, so batches cross boundaries often."""
MAX_AGE = 400
"""The mark max age (ms): shorter, so a mark goes stale between two boundaries too."""
SYMBOLS = ("AAA", "BBB", "CCC")
PRICES = (100.0, 101.0, 99.0, 124.0, 126.0, 75.0, 74.0, 200.0, 202.0, 1e-12, 1e12)
"""Within the 25 % band of 100 and far from it, near each other (confirmations) or not."""


def engine() -> RiskEngine:
    """An engine with a short VaR interval, a shorter mark age, and room for two symbols."""
    config = RiskConfig(mark_max_age_ms=MAX_AGE, var=VarConfig(sample_interval_ms=STEP, window=50))
    return RiskEngine(config, max_symbols=2, alert_dedup_window_ms=5_000)


def state(e: RiskEngine) -> tuple[object, ...]:
    """Everything a tick can change."""
    returns = e.book.returns
    return (
        dict(e.book.marks),
        {s: e.marks.suspect_level(s) for s in SYMBOLS},
        {s: returns.samples(s) for s in returns.symbols()},
        e.marks.holds_suspects(),
    )


tick = st.tuples(st.sampled_from(SYMBOLS), st.sampled_from(PRICES), st.none() | st.integers(0, 9))
batch = st.tuples(st.sampled_from((0, 1, 2, 499, 500, 999, 1_000, 1_001, 2_000)), st.lists(tick))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(batch, max_size=12))
def test_set_marks_when_any_batches_then_as_set_mark_tick_by_tick(
    batches: list[tuple[int, list[tuple[str, float, int | None]]]],
) -> None:
    one, many = engine(), engine()
    now = T0 - 1
    for gap, ticks in batches:
        now += gap
        expected = []
        for symbol, price, stamp in ticks:
            result = one.set_mark(symbol, price, now if stamp is None else stamp, now)
            if result is not TickResult.APPLIED:
                mark = one.book.marks.get(symbol)
                expected.append(
                    HeldTick(symbol, price, result, None if mark is None else mark.price)
                )
        assert many.set_marks(ticks, now) == expected
        assert state(many) == state(one)


def test_set_marks_when_a_mark_fresh_and_in_band_then_replaced_with_the_batch_time() -> None:
    e = engine()
    e.set_mark("AAA", 100.0, T0, T0)
    assert e.set_marks([("AAA", 101.0, None), ("AAA", 102.0, 7)], T0 + 10) == []
    mark = e.book.marks["AAA"]
    assert (mark.price, mark.received_ms, mark.timestamp) == (102.0, T0 + 10, 7)


def test_set_marks_when_suspect_confirmed_and_refused_then_returned_in_order() -> None:
    e = engine()
    ticks = [("AAA", 100.0, None), ("AAA", 200.0, None), ("BBB", 1.0, None)]
    ticks += [("AAA", 200.0, None)] * 3 + [("CCC", 5.0, None)]
    held = e.set_marks(ticks, T0 + 1)
    assert [(h.symbol, h.result, h.mark) for h in held] == [
        ("AAA", TickResult.SUSPECT_ALERT, 100.0),
        ("AAA", TickResult.SUSPECT, 100.0),
        ("AAA", TickResult.SUSPECT, 100.0),
        ("AAA", TickResult.CONFIRMED, 200.0),
        ("CCC", TickResult.SYMBOL_LIMIT, None),
    ]


def test_set_marks_when_now_is_a_boundary_then_the_new_mark_is_its_sample() -> None:
    e = engine()
    e.set_mark("AAA", 100.0, T0 - 1, T0 - 1)  # T0 is a multiple of STEP
    assert e.set_marks([("AAA", 101.0, None), ("AAA", 102.0, None)], T0) == []
    assert e.book.returns.samples("AAA") == [(T0, 102.0)]


def test_set_marks_when_a_boundary_passed_since_the_mark_then_the_mark_is_sampled_there() -> None:
    e = engine()
    e.set_mark("AAA", 100.0, T0 + STEP - 10, T0 + STEP - 10)  # fresh at T0 + STEP + 1
    assert e.set_marks([("AAA", 101.0, None)], T0 + STEP + 1) == []
    assert e.book.returns.samples("AAA") == [(T0 + STEP, 100.0)]
    assert e.book.marks["AAA"].price == 101.0


def test_set_marks_when_the_mark_is_stale_then_a_far_tick_is_applied() -> None:
    e = engine()
    e.set_mark("AAA", 100.0, T0 + 1, T0 + 1)
    assert e.set_marks([("AAA", 500.0, None)], T0 + 1 + MAX_AGE + 1) == []  # no boundary
    assert e.book.marks["AAA"].price == 500.0


def test_set_marks_when_a_suspect_is_pending_then_a_tick_near_the_mark_cancels_it() -> None:
    e = engine()
    e.set_mark("AAA", 100.0, T0 + 1, T0 + 1)
    assert e.set_mark("AAA", 200.0, T0 + 2, T0 + 2) is TickResult.SUSPECT_ALERT
    assert e.set_marks([("AAA", 101.0, None), ("BBB", 10.0, None)], T0 + 3) == []
    assert e.marks.suspect_level("AAA") is None
    assert not e.marks.holds_suspects()
