"""The three ways a folder of images says which class each file is, read into one list.

- class folders: ``top/<class>/...``;
- split folders: ``top/{train,val|validation,test}/<class>/...``, the owner's split;
- a CSV of ``path,label`` rows (optionally ``split``), paths relative to the CSV's folder.

Shared by the prepare stage and `visionlab data inspect`/`data add`, which must read a folder the
same way. Files beside the class folders are listed without a label (prepare reports and drops them).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from visionlab.data.scanning import is_junk_folder
from visionlab.errors import VisionlabError

SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
SHOWN = 5


@dataclass(frozen=True)
class Listed:
    path: str  # as every stage opens it
    rel: str  # relative to the top: the key of exclusion lists
    label: str | None
    split: str | None = None  # the owner's split, when the folder says one


@dataclass
class Layout:
    kind: str  # "class folders", "split folders" or "csv"
    files: list[Listed]
    unlisted: int = 0  # files in a CSV layout's folder that no row names
    classes: list[str] = field(default_factory=list)  # every class the folder names, sorted

    @property
    def presplit(self) -> bool:
        return any(item.split for item in self.files)


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


def _folders(top: Path) -> Layout:
    tops = split_folders(top)
    files: list[Listed] = []
    classes: set[str] = set()
    for split, parent in tops:
        for entry in sorted(parent.iterdir()):
            if entry.is_file():
                files.append(Listed(str(entry), entry.relative_to(top).as_posix(), None))
            elif entry.is_dir() and not is_junk_folder(entry.name):
                classes.add(entry.name)
                for file in sorted(p for p in entry.rglob("*") if p.is_file()):
                    files.append(Listed(str(file), file.relative_to(top).as_posix(), entry.name, split))
    kind = "split folders" if tops[0][0] is not None else "class folders"
    return Layout(kind, files, classes=sorted(classes))


def _csv_rows(table: Path) -> list[tuple[int, str, str, str | None]]:
    with table.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        if "path" not in columns or "label" not in columns:
            raise VisionlabError(
                f"{table}: the first row must name the columns path,label (and optionally split); "
                f"it names {', '.join(columns) or 'nothing'}"
            )
        rows = []
        for number, row in enumerate(reader, 2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            split = row.get("split") or None
            if not row["path"] or not row["label"]:
                raise VisionlabError(f"{table}: row {number} has an empty path or label")
            if split is not None and split.lower() not in SPLIT_FOLDERS:
                raise VisionlabError(
                    f"{table}: row {number}: split {split!r} is not train, val, validation or test"
                )
            rows.append((number, row["path"], row["label"], SPLIT_FOLDERS[split.lower()] if split else None))
    return rows


def _csv(table: Path) -> Layout:
    top = table.parent.resolve()
    files: list[Listed] = []
    missing: list[str] = []
    seen: set[str] = set()
    for number, written, label, split in _csv_rows(table):
        rel = PurePosixPath(written.replace("\\", "/"))
        path = (top / rel).resolve()
        if rel.is_absolute() or not path.is_relative_to(top):
            raise VisionlabError(f"{table}: row {number}: {written} is outside the CSV's folder {top}")
        key = path.relative_to(top).as_posix()
        if key in seen:
            raise VisionlabError(f"{table}: row {number}: {written} is listed twice")
        seen.add(key)
        if not path.is_file():
            missing.append(written)
            continue
        files.append(Listed(str(path), key, label, split))
    if missing:
        raise VisionlabError(
            f"{table}: {len(missing)} listed file{'s' * (len(missing) > 1)} not found "
            f"(paths are relative to {top}): {', '.join(missing[:SHOWN])}"
        )
    others = [p for p in top.rglob("*") if p.is_file() and p != table.resolve()]
    unlisted = sum(1 for p in others if p.relative_to(top).as_posix() not in seen)
    return Layout("csv", sorted(files, key=lambda f: f.rel), unlisted, sorted({f.label for f in files}))


def list_images(top: Path, labels: str | None = None) -> Layout:
    """Every file ``top`` offers for training, with its class (and the owner's split)."""
    if labels is not None:
        table = top / labels
        if not table.is_file():
            raise VisionlabError(f"{table}: no such CSV (the card's labels, relative to its folder)")
        return _csv(table)
    return _folders(top)
