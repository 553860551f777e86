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


def grouped_split(
    items: Sequence[tuple[str, str]],
    groups: Sequence[Sequence[str]],
    fractions: SplitFractions,
    seed: int,
) -> dict[str, str]:
    """Like :func:`stratified_split`, but every group of keys lands in one split.

    Each class keeps its quota per split (the same counts as without groups): groups are placed
    first, largest first, each into the split with the most room left relative to its quota
    (seeded choice among ties), then single images fill what is left. Only a group too large for
    any split's remaining room makes a count differ. Without groups the result is exactly
    :func:`stratified_split`'s.
    """
    groups = [sorted(g) for g in groups if len(g) > 1]
    if not groups:
        return stratified_split(items, fractions, seed)
    label_of = dict(items)
    by_label: dict[str, list[str]] = defaultdict(list)
    for key, label in items:
        by_label[label].append(key)
    quota: dict[str, dict[str, int]] = {}
    for label, keys in by_label.items():
        n_val = round(len(keys) * fractions.val)
        n_test = round(len(keys) * fractions.test)
        quota[label] = {"train": len(keys) - n_val - n_test, "val": n_val, "test": n_test}
    room = {label: dict(q) for label, q in quota.items()}
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    ties = rng.permutation(len(groups))
    for index in sorted(range(len(groups)), key=lambda i: (-len(groups[i]), ties[i])):
        members = groups[index]
        need: dict[str, int] = defaultdict(int)
        for key in members:
            need[label_of[key]] += 1

        def score(split: str, need: dict[str, int] = need) -> tuple[bool, float]:
            fits = all(room[label][split] >= n for label, n in need.items())
            relative = min(room[label][split] / max(quota[label][split], 1) for label in need)
            return fits, relative

        candidates = [s for s in SPLITS if any(quota[label][s] for label in need)]
        best = max(score(s) for s in candidates)
        chosen = [s for s in candidates if score(s) == best]
        split = chosen[int(rng.integers(len(chosen)))]
        for key in members:
            assignment[key] = split
            room[label_of[key]][split] -= 1
    for label in sorted(by_label):
        keys = sorted(k for k in by_label[label] if k not in assignment)
        order = rng.permutation(len(keys))
        left = [(s, max(room[label][s], 0)) for s in SPLITS]
        ranks = [s for s, n in left for _ in range(n)]
        # The rooms left add up to at least the images left (a group overshooting one split
        # leaves another short), so every image gets a rank.
        for rank, index in enumerate(order):
            assignment[keys[index]] = ranks[rank]
    return assignment
