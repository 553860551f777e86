"""Seeded, stratified train/validation/test split."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from visionlab.params import SplitFractions

SPLITS = ("train", "val", "test")


def stratified_split(
    items: Sequence[tuple[str, str]], fractions: SplitFractions, seed: int
) -> dict[str, str]:
    """Assign each ``(key, label)`` to a split, class by class, in the given proportions.

    The result depends only on the set of keys, their labels, the fractions and the seed, not on
    the order of ``items``.
    """
    by_label: dict[str, list[str]] = defaultdict(list)
    for key, label in items:
        by_label[label].append(key)
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for label in sorted(by_label):
        keys = sorted(by_label[label])
        order = rng.permutation(len(keys))
        n_val = round(len(keys) * fractions.val)
        n_test = round(len(keys) * fractions.test)
        n_train = len(keys) - n_val - n_test
        for rank, index in enumerate(order):
            if rank < n_train:
                split = "train"
            elif rank < n_train + n_val:
                split = "val"
            else:
                split = "test"
            assignment[keys[index]] = split
    return assignment
