"""JSON has no infinity: how non-finite numbers go on the wire (as null)."""

from __future__ import annotations

import math


def finite(x: float) -> float | None:
    """``x`` when finite, else None (JSON null)."""
    return x if math.isfinite(x) else None


def finite_values(values: dict[str, float]) -> dict[str, float | None]:
    """``values`` with every infinite (or NaN) value as None (JSON null).

    The dict itself when all are finite (their sum is then finite too; a sum that overflows
    only takes the slow path), so the caller must not change either afterwards.
    """
    if math.isfinite(sum(values.values())):
        return values  # type: ignore[return-value]  # dict is invariant; float ⊂ float | None
    return {key: finite(value) for key, value in values.items()}
