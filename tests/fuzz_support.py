"""How much fuzzing a run does: ``make test`` runs a quick pass, ``make fuzz`` a long one.

``DISTTORCH_FUZZ_SCALE`` (default 1) multiplies every fuzz test's example count; ``make fuzz`` sets it to 50.
Tests import it as ``from fuzz_support import examples, settings_for`` (tests/ is on sys.path).
"""
from __future__ import annotations

import os

SCALE = float(os.environ.get("DISTTORCH_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    """``n`` scaled by DISTTORCH_FUZZ_SCALE (at least 1)."""
    return max(1, int(n * SCALE))


def settings_for(n: int):
    """Hypothesis settings for a fuzz test of ``n`` examples at scale 1: no deadline (CI machines are slow),
    derandomized in the quick pass so ``make test`` is reproducible, random in ``make fuzz``."""
    from hypothesis import HealthCheck, settings

    return settings(max_examples=examples(n), deadline=None, derandomize=SCALE <= 1,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
