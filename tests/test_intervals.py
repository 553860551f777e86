"""Intervals on test accuracies, a study's figure against ours, and McNemar on paired answers."""

import math

import pytest
import torch

from visionlab.evaluation.intervals import against_published, correct_count, mcnemar, verdict, wilson
from visionlab.evaluation.scoring import scores as _scores


def test_wilson_matches_the_textbook_values():
    # flowers-best's 95.55% of 337 test images: about 92.8-97.3% (the figure the trust issue quotes).
    assert wilson(322, 337) == pytest.approx((0.92787, 0.97284), abs=1e-5)
    assert wilson(8, 10) == pytest.approx((0.49016, 0.94332), abs=1e-5)
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.27753, abs=1e-5)  # never below 0, never a point
    assert wilson(10, 10)[1] <= 1.0 and wilson(10, 10)[0] == pytest.approx(0.72247, abs=1e-5)
    assert all(math.isnan(v) for v in wilson(0, 0))
    with pytest.raises(ValueError, match="correct must lie in 0..5"):
        wilson(6, 5)
    assert correct_count(0.9555, 337) == 322


def test_a_study_is_beaten_only_when_its_figure_lies_outside_our_interval():
    low, high = wilson(322, 337)
    assert against_published(low, high, 0.9306) == "within"  # ResNet50's 93.06%: no win, +2.5 pp or not
    assert verdict(low, high, 0.9306) == "within chance"
    assert verdict(low, high, 0.90) == "better beyond chance"
    assert verdict(low, high, 0.99) == "worse beyond chance"
    assert verdict(low, high, math.nan) == "not comparable"


def test_mcnemar_exact_p_values():
    # 10 images only the first model gets right, 2 only the second: p = 2 * P(X <= 2 | 12, 1/2).
    first = [True] * 10 + [False] * 2 + [True] * 50
    second = [False] * 10 + [True] * 2 + [True] * 50
    assert mcnemar(first, second) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar(first, first) == 1.0
    assert mcnemar([True, False], [False, True]) == 1.0
    with pytest.raises(ValueError, match="same images"):
        mcnemar([True], [True, False])


def test_evaluate_writes_the_count_and_interval_beside_each_accuracy():
    logits = torch.tensor([[2.0, 0.0]] * 8 + [[0.0, 2.0]] * 2)
    scores = _scores(logits, torch.zeros(10, dtype=torch.long))
    assert (scores["correct"], scores["images"], scores["accuracy"]) == (8, 10, 0.8)
    assert (scores["accuracy_ci_low"], scores["accuracy_ci_high"]) == pytest.approx(wilson(8, 10))
