"""How far a test accuracy can be trusted: Wilson intervals, a study's figure against ours, McNemar.

A test split of a few hundred images leaves several points of chance in an accuracy: 95.55% of
337 images is anywhere from about 92.8% to 97.3%. A claim to beat a published figure holds only
when that figure lies outside our interval; two of our models on the same test images are compared
with McNemar's exact test on the images where exactly one of them is right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054  # the two-sided 95% normal quantile


def wilson(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``correct / total`` (95% by default); (nan, nan) for no images."""
    if total <= 0:
        return math.nan, math.nan
    if not 0 <= correct <= total:
        raise ValueError(f"correct must lie in 0..{total} (got {correct})")
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def correct_count(accuracy: float, total: int) -> int:
    """The number of right answers behind an accuracy (accuracies are stored as fractions)."""
    return round(accuracy * total)


def accuracy_interval(accuracy: float, total: float) -> tuple[float, float]:
    """The Wilson interval of a stored accuracy and its image count; (nan, nan) when unknown."""
    if not (math.isfinite(accuracy) and math.isfinite(total)) or total <= 0:
        return math.nan, math.nan
    return wilson(correct_count(accuracy, int(total)), int(total))


def against_published(low: float, high: float, published: float) -> str:
    """``above``/``below`` when the published figure lies outside our 95% interval, else ``within``."""
    if any(math.isnan(v) for v in (low, high, published)):
        return "unknown"
    if published < low:
        return "above"
    if published > high:
        return "below"
    return "within"


def verdict(low: float, high: float, published: float) -> str:
    """The comparison in words, for tables and sentences."""
    return {
        "above": "better beyond chance",
        "below": "worse beyond chance",
        "within": "within chance",
        "unknown": "not comparable",
    }[against_published(low, high, published)]


def mcnemar(first: Sequence[bool], second: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value: do two models, right or wrong on the same images, differ?"""
    if len(first) != len(second):
        raise ValueError(f"both models must answer the same images ({len(first)} vs {len(second)})")
    only_first = sum(1 for a, b in zip(first, second, strict=True) if a and not b)
    only_second = sum(1 for a, b in zip(first, second, strict=True) if b and not a)
    discordant = only_first + only_second
    if discordant == 0:
        return 1.0
    k = min(only_first, only_second)
    tail = sum(math.comb(discordant, i) for i in range(k + 1)) / 2**discordant
    return min(1.0, 2 * tail)
