"""Folders already split by their owner (``train/``, ``val/`` or ``validation/``, ``test/``).

The owner's split is kept file by file: an image in ``test/`` is tested on, never pooled and split
again. A split the owner left out is carved from ``train/`` with the card's fractions (stratified,
seeded, near-duplicate groups inside one split). Copies across the owner's splits are not moved:
exact ones follow the usual duplicate rule, near ones are reported with the splits they sit in.
"""

from __future__ import annotations

from collections.abc import Sequence

from visionlab.data.scanned import Scanned
from visionlab.data.split import grouped_split
from visionlab.errors import VisionlabError
from visionlab.params import SplitFractions


def owner_assignment(
    kept: list[Scanned],
    owner: dict[str, str],
    fractions: SplitFractions,
    seed: int,
    groups: Sequence[dict] = (),
) -> dict[str, str]:
    """Each kept file's split: the owner's, with the missing ones carved from the owner's train."""
    present = {owner[s.path] for s in kept}
    if "train" not in present:
        raise VisionlabError(
            f"the folder is split ({', '.join(sorted(present))}) but has no train/ folder to train on"
        )
    missing = [split for split in ("val", "test") if split not in present]
    total = fractions.train + sum(getattr(fractions, split) for split in missing)
    carve = SplitFractions(
        train=fractions.train / total,
        val=fractions.val / total if "val" in missing else 0.0,
        test=fractions.test / total if "test" in missing else 0.0,
    )
    pool = [(s.path, s.label) for s in kept if owner[s.path] == "train"]
    pooled = {path for path, _ in pool}
    inside = [g["members"] for g in groups if len(g["members"]) > 1 and pooled.issuperset(g["members"])]
    assignment = grouped_split(pool, inside, carve, seed)
    assignment.update({s.path: owner[s.path] for s in kept if owner[s.path] != "train"})
    return assignment
