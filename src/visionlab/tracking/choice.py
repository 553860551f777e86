"""How the registry's aliases choose among a data set's evaluated experiments, on validation only.

``best``: the highest validation accuracy (ties: the lower validation loss, then the name).
``robust``: among the experiments whose degraded validation copies were scored
(``evaluate.robustness``) and whose clean validation accuracy is within chance of the best one's
(at least the lower end of its 95% interval), the highest worst degraded copy (ties: clean
validation accuracy). Test figures ride along for the record and never choose; quick tries never
compete. :mod:`visionlab.tracking.registry` points the aliases at what this chooses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALIAS = "best"
ROBUST_ALIAS = "robust"  # chosen on the worst degraded validation copy (evaluate.robustness)


@dataclass(frozen=True)
class Candidate:
    """One evaluated experiment competing for its data set's registry entry."""

    experiment: str
    run_id: str | None
    val_accuracy: float
    val_loss: float
    test_accuracy: float = math.nan  # tagged on the version for the record; never chooses
    test_macro_f1: float = math.nan
    quick_try: str | None = None  # why it is not a full-scale run; such runs never compete
    val_worst_degraded: float = math.nan  # its lowest degraded validation copy (evaluate.robustness)
    val_accuracy_low: float = math.nan  # the lower end of its clean validation accuracy's 95% interval


CHOSEN_ON = {ALIAS: "validation accuracy", ROBUST_ALIAS: "its worst degraded validation copy"}


def _clean(value: float) -> float:
    # NaN never wins: it sorts below every real score.
    return value if value == value else float("-inf")


def score(candidate: Candidate, alias: str = ALIAS) -> tuple[float, float]:
    if alias == ROBUST_ALIAS:
        return _clean(candidate.val_worst_degraded), _clean(candidate.val_accuracy)
    return _clean(candidate.val_accuracy), _clean(-candidate.val_loss)


def best_candidate(candidates: Sequence[Candidate], alias: str = ALIAS) -> Candidate | None:
    """Highest validation accuracy, ties broken by the lower validation loss, then by name (stable
    across runs); for ``robust``, the highest worst degraded validation copy, ties broken by clean
    validation accuracy, among those scored on degraded copies whose clean validation accuracy
    reaches :func:`robust_floor`. Quick tries never; test figures play no part."""
    eligible = sorted((c for c in candidates if not c.quick_try), key=lambda c: c.experiment)
    if alias == ROBUST_ALIAS:
        pool = robust_pool(eligible)
        floor = robust_floor(pool)
        eligible = [c for c in pool if _clean(c.val_accuracy) >= floor]
    if not eligible:
        return None
    return max(eligible, key=lambda c: score(c, alias))


def robust_floor(candidates: Sequence[Candidate]) -> float:
    """The clean validation accuracy a ``robust`` candidate must reach: the lower end of the 95%
    interval of the best clean one among ``candidates`` (-inf when none or its interval is unknown)."""
    top = best_candidate(candidates, ALIAS)
    if top is None or not math.isfinite(top.val_accuracy_low):
        return float("-inf")
    return top.val_accuracy_low


def robust_pool(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates that may hold ``robust``: full-scale, with degraded validation copies scored."""
    return [c for c in candidates if not c.quick_try and math.isfinite(c.val_worst_degraded)]
