"""The historical VaR's parameters and result (:mod:`~risk_worker.domain.var` computes it).

msgspec Structs, so this module stays interpreted in the compiled decision core
(:mod:`risk_worker._core`): a compiled module would lose the field types msgspec reads from a
Struct's annotations.
"""

from __future__ import annotations

import math

import msgspec

INF = math.inf


class VarConfig(msgspec.Struct, frozen=True):
    """Parameters of the historical VaR (from settings).

    Attributes:
        sample_interval_ms: interval of the mark samples (ms; ``RISK_VAR_SAMPLE_INTERVAL``).
        window: most samples kept per symbol and most scenarios (``RISK_VAR_WINDOW``).
        min_samples: fewest aligned returns a held symbol needs (``RISK_VAR_MIN_SAMPLES``).
        horizon_s: the horizon VaR and ES are scaled to (seconds; ``RISK_VAR_HORIZON``).
    """

    sample_interval_ms: int = 60_000
    window: int = 1_440
    min_samples: int = 120
    horizon_s: float = 86_400.0


class VarResult(msgspec.Struct, frozen=True, gc=False):
    """VaR and ES of an account (quote currency, losses positive, at the horizon).

    None values: not computable (``lacking`` names the held symbols short of history).
    ``scenarios`` is n.
    """

    var_95: float | None
    var_99: float | None
    es_97_5: float | None
    scenarios: int
    lacking: tuple[str, ...] = ()

    def var_99_fraction(self, equity: float) -> float | None:
        """var_99 / equity; ∞ when equity ≤ 0 with a loss; None when var_99 is."""
        var = self.var_99
        if var is None:
            return None
        if var == 0.0:
            return 0.0
        return INF if equity <= 0.0 else var / equity


NOTHING_HELD = VarResult(0.0, 0.0, 0.0, 0)
