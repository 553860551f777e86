"""How many images each split of a data set holds, before or after prepare has run.

From the prepared manifest when there is one; otherwise from the published archive's size (or a
folder source's files), with the card's class list, per-class cap and exclusion list applied, and an
official test split (CIFAR-10's 10,000) kept whole. ``visionlab plan`` multiplies these by its rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from visionlab import paths
from visionlab.data.folder_source import folder_path
from visionlab.params import DatasetCard, Params

# Images and classes in each published archive (what the studies used), for unprepared data sets.
ARCHIVES = {
    "flower_photos.tgz": (3670, 5),
    "flowers-recognition.zip": (4242, 5),
    "kagglecatsanddogs_5340.zip": (25000, 2),
    "cifar-10-python.tar.gz": (60000, 10),
    "101_ObjectCategories.tar.gz": (484, 5),  # the five classes the Caltech study keeps
}
OFFICIAL_TEST = {"cifar10_pickle": 10000}  # formats whose test split is published, not carved


@dataclass(frozen=True)
class Counts:
    train: int
    val: int
    test: int
    measured: bool  # from a prepared manifest, not from the archive's size
    classes: int = 5

    @property
    def total(self) -> int:
        return self.train + self.val + self.test


def image_counts(params: Params, dataset: str, root: Path) -> Counts | None:
    """Images per split of ``dataset``: prepared manifest, else the archive's size; None if unknown."""
    manifest = root / paths.prepared_dir(dataset) / "manifest.csv"
    if manifest.is_file():
        import pandas as pd

        table = pd.read_csv(manifest, usecols=["label", "split"])
        splits = table["split"].value_counts()
        train, val, test = (int(splits.get(split, 0)) for split in ("train", "val", "test"))
        return Counts(train, val, test, True, max(int(table["label"].nunique()), 1))
    card = params.dataset(dataset)
    archive = _folder_size(card) if card.source.folder else ARCHIVES.get(card.source.archive_name)
    if archive is None:
        return None
    total, classes = archive
    classes = len(card.classes) if card.classes else classes
    per_class = card.max_per_class or params.prepare.max_per_class
    if per_class:
        total = min(total, per_class * classes)
    total -= excluded(root, card.exclusions)
    split = card.split or params.prepare.split
    test = OFFICIAL_TEST.get(card.format)
    if test is not None:  # validation is carved from the training images only
        pool = total - test
        val = round(pool * split.val / (split.train + split.val))
        return Counts(pool - val, val, test, False, classes)
    return Counts(
        round(total * split.train), round(total * split.val), round(total * split.test), False, classes
    )


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _folder_size(card: DatasetCard) -> tuple[int, int] | None:
    """A folder source's image files and class folders, by name (prepare decodes them later)."""
    folder = folder_path(card) / card.root
    if not folder.is_dir():
        return None
    files = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    classes = {p.parent.name for p in files}
    return (len(files), len(classes)) if files else None


def excluded(root: Path, exclusions: str | None) -> int:
    """Entries of a card's exclusion list: images prepare will drop."""
    if not exclusions or not (root / exclusions).is_file():
        return 0
    lines = (line.split("#")[0].strip() for line in (root / exclusions).read_text().splitlines())
    return sum(1 for line in lines if line)
