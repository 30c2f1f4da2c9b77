"""A check decided without ``detail`` (a compact reply) decides exactly as with it: only an
approval's ``utilization`` is left without the post-trade policies (the controls' remain), and
its post-trade metrics hold a notional summary instead of the per-symbol dict (every other
field the same, the summary's readings the dict's), on seeded random books, policies and
orders (``tests/core_equivalence.py``)."""

from __future__ import annotations

import random
import re

import msgspec
import pytest

from tests.core_equivalence import run_case

CASES = 40
DECISION = re.compile(rb"\A\d+ \d+ (\{.*)\Z", re.S)


def _outcomes(seed: int, detail: bool) -> list[object]:
    """Each decision decoded (a dict); every other line as it is."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for case in range(CASES):
        run_case(rng, case, out, detail)
    found = [DECISION.match(line) for line in out]
    return [
        line if m is None else msgspec.json.decode(m[1]) for line, m in zip(out, found, strict=True)
    ]


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_check_when_decided_without_detail_then_same_decision_but_approvals_utilization(
    seed: int,
) -> None:
    full, compact = _outcomes(seed, True), _outcomes(seed, False)
    assert len(full) == len(compact)
    approvals = trimmed = denials = summarized = 0
    for a, b in zip(full, compact, strict=True):
        if not isinstance(a, dict):
            assert a == b  # book events, assessments and the monitor: the same book
            continue
        assert isinstance(b, dict)
        if a["approved"] and a["metrics"] is not None:  # a decision with post-trade figures
            approvals += 1
            assert set(b["utilization"]) <= set(a["utilization"])
            trimmed += len(a["utilization"]) > len(b["utilization"])
            summarized += _same_but_summarized(a["metrics"], b["metrics"])
            assert {**a, "utilization": None, "metrics": None} == {
                **b,
                "utilization": None,
                "metrics": None,
            }
            continue
        denials += not a["approved"]
        assert a == b
    assert approvals > 50 and trimmed > 20 and denials > 50  # the cases cover both
    assert summarized > 50  # the others breached a soft policy: full metrics, as with detail


def _same_but_summarized(full: dict[str, object], compact: dict[str, object]) -> bool:
    """Whether the compact metrics are summarized: then they equal the full ones but for the
    notional dict, and their summary reads as the dict (the largest, and the notional at the
    order's symbol). Else (a breach was found: the full metrics were computed) they are the
    full ones."""
    held = full["position_notional"]
    summary = compact["notional_summary"]
    if summary is None:
        assert compact == full
        return False
    assert isinstance(held, dict) and isinstance(summary, dict)
    assert full["notional_summary"] is None and compact["position_notional"] is None
    assert {**full, "position_notional": None, "notional_summary": None} == {
        **compact,
        "position_notional": None,
        "notional_summary": None,
    }
    largest = 0.0
    for value in held.values():
        largest = max(largest, value)
    assert summary["largest"] == largest
    assert summary["at_symbol"] == held.get(summary["symbol"], 0.0)
    return True
