"""The cleaning rules of the prepare stage, in order: unreadable files, files outside the class
folders, the exclusion list, exact duplicates, near-duplicates, then the per-class limit.

Each dropped file gets one record with its reason (the constants below, which the cleaning report
counts) and a detail a reader can check.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

from visionlab.data import near_duplicates
from visionlab.data.scanned import Scanned
from visionlab.params import NearDuplicateParams, PrepareParams

OUTSIDE_CLASS_FOLDER = "outside_class_folder"
EXCLUDED_BY_LIST = "excluded_by_list"
DUPLICATE = "duplicate"
DUPLICATE_ACROSS_CLASSES = "duplicate_across_classes"
OVER_CLASS_LIMIT = "over_class_limit"
NEAR_DUPLICATE = "near_duplicate"
NEAR_DUPLICATE_OF_TEST = "near_duplicate_of_official_test"


def _hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def near_duplicate_groups(
    kept: list[Scanned],
    settings: NearDuplicateParams,
    official_test: frozenset[str],
    drop: Callable[[Scanned, str, str], None],
) -> tuple[list[Scanned], list[dict]]:
    """Group near-copies among ``kept``; drop what the policy says; return survivors and groups.

    With an official test set (CIFAR-10), a pool image that is a near-copy of a test image is
    dropped whatever the policy: the test set is fixed, so the group cannot move into one split.
    ``keep_one`` keeps each group's largest image (then the first path). Each group record lists
    its members, their classes and the largest Hamming distance inside it.
    """
    if settings.policy == "off":
        return kept, []
    hashed = [s for s in kept if s.fingerprint is not None]
    records, gone = [], set()
    for indices in near_duplicates.group([s.fingerprint for s in hashed], settings.threshold):
        members = sorted((hashed[i] for i in indices), key=lambda s: s.path)
        spread = max(_hamming(a.fingerprint, b.fingerprint) for a in members for b in members)
        record = {
            "members": [m.path for m in members],
            "classes": sorted({m.label for m in members if m.label}),
            "max_distance": spread,
        }
        tests = [m for m in members if m.path in official_test]
        if tests:
            for item in members:
                if item.path not in official_test:
                    drop(item, NEAR_DUPLICATE_OF_TEST, f"{settings.method} near-copy of {tests[0].path}")
                    gone.add(item.path)
            record["kept"] = [m.path for m in tests]
        elif settings.policy == "keep_one":
            best = max(members, key=lambda s: (s.pixels, [-ord(c) for c in s.path]))
            for item in members:
                if item is not best:
                    drop(item, NEAR_DUPLICATE, f"{settings.method} near-copy of {best.path}")
                    gone.add(item.path)
            record["kept"] = [best.path]
        records.append(record)
    return [s for s in kept if s.path not in gone], records


Drop = Callable[[Scanned, str, str], None]


def _screened(scanned: list[Scanned], exclusions: dict[str, str], drop: Drop) -> list[Scanned]:
    """The files that pass the per-file rules: readable, in a class folder, not on the exclusion list."""
    candidates: list[Scanned] = []
    for item in scanned:
        if item.reason is not None:
            detail = item.detail
            if item.label is None:
                detail = f"beside the class folders; {detail}"
            drop(item, item.reason, detail)
        elif item.label is None:
            drop(item, OUTSIDE_CLASS_FOLDER, "an image beside the class folders")
        elif item.rel in exclusions:
            drop(item, EXCLUDED_BY_LIST, exclusions[item.rel] or "listed in the exclusion list")
        else:
            candidates.append(item)
    return candidates


def _without_exact_duplicates(candidates: list[Scanned], drop: Drop) -> list[Scanned]:
    """One file of each set of identical bytes (the first path); every copy when filed under two classes."""
    by_hash: dict[str, list[Scanned]] = defaultdict(list)
    for item in candidates:
        by_hash[item.sha256].append(item)
    kept: list[Scanned] = []
    for group in by_hash.values():
        group.sort(key=lambda s: s.path)
        labels = sorted({s.label for s in group if s.label})
        if len(labels) > 1:
            for item in group:
                drop(item, DUPLICATE_ACROSS_CLASSES, f"same bytes filed under {', '.join(labels)}")
            continue
        kept.append(group[0])
        for item in group[1:]:
            drop(item, DUPLICATE, f"same bytes as {group[0].path}")
    return kept


def _class_limited(
    kept: list[Scanned], settings: PrepareParams, official_test: frozenset[str], drop: Drop
) -> list[Scanned]:
    """``prepare.max_per_class`` drawn per class (seeded) from the pool that is split; an official
    test set stays whole."""
    if settings.max_per_class is None:
        return kept
    rng = np.random.default_rng(settings.seed)
    limited = [s for s in kept if s.path in official_test]
    pool = [s for s in kept if s.path not in official_test]
    for label in sorted({s.label for s in pool}):
        members = sorted((s for s in pool if s.label == label), key=lambda s: s.path)
        chosen = set(rng.permutation(len(members))[: settings.max_per_class].tolist())
        for index, item in enumerate(members):
            if index in chosen:
                limited.append(item)
            else:
                drop(item, OVER_CLASS_LIMIT, f"prepare.max_per_class={settings.max_per_class}")
    return limited


def clean(
    scanned: list[Scanned],
    exclusions: dict[str, str],
    settings: PrepareParams,
    official_test: frozenset[str] = frozenset(),
) -> tuple[list[Scanned], list[dict], list[str], list[dict]]:
    """Apply the cleaning rules in order.

    Returns kept files, dropped records, unmatched exclusions and near-duplicate groups.
    ``prepare.max_per_class`` limits the pool that is split; an official test set stays whole.
    """
    dropped: list[dict] = []

    def drop(item: Scanned, reason: str, detail: str) -> None:
        dropped.append({"path": item.path, "class": item.label, "reason": reason, "detail": detail})

    candidates = _screened(scanned, exclusions, drop)
    seen_rel = {item.rel for item in scanned}
    unmatched = sorted(rel for rel in exclusions if rel not in seen_rel)
    kept = _without_exact_duplicates(candidates, drop)
    kept, groups = near_duplicate_groups(kept, settings.near_duplicates, official_test, drop)
    kept = _class_limited(kept, settings, official_test, drop)
    kept.sort(key=lambda s: s.path)
    dropped.sort(key=lambda d: d["path"])
    # Members the class limit dropped leave their group; a group of one is no group.
    present = {s.path for s in kept}
    for record in groups:
        record["members"] = [m for m in record["members"] if m in present]
    groups = [g for g in groups if len(g["members"]) > 1 or "kept" in g]
    return kept, dropped, unmatched, groups
