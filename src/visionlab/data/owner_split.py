"""Folders already split by their owner (``train/``, ``val/`` or ``validation/``, ``test/``).

The owner's split is kept file by file: an image in ``test/`` is tested on, never pooled and split
again. A split the owner left out is carved from ``train/`` with the card's fractions (stratified,
seeded, near-duplicate groups inside one split). Copies across the owner's splits are not moved:
exact ones follow the usual duplicate rule, near ones are reported with the splits they sit in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from visionlab.data.scanned import Scanned
from visionlab.data.scanning import is_junk_folder
from visionlab.data.split import grouped_split
from visionlab.errors import VisionlabError
from visionlab.params import SplitFractions

SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


def split_folders(top: Path) -> list[tuple[str | None, Path]]:
    """``[(split, folder)]`` of a pre-split folder, else ``[(None, top)]`` (class folders at the top)."""
    folders = sorted(p for p in top.iterdir() if p.is_dir() and not is_junk_folder(p.name))
    if not folders or not all(p.name.lower() in SPLIT_FOLDERS for p in folders):
        return [(None, top)]
    splits = [SPLIT_FOLDERS[p.name.lower()] for p in folders]
    doubled = sorted({s for s in splits if splits.count(s) > 1})
    if doubled:
        raise VisionlabError(
            f"{top}: two folders name the {doubled[0]} split (val/ and validation/?): merge them"
        )
    return [(SPLIT_FOLDERS[p.name.lower()], p) for p in folders]


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
