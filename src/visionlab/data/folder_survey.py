"""`visionlab data inspect PATH`: what a folder of photos holds, before any training.

The files are judged exactly as the prepare stage judges them (``scanning.scan``: bytes hashed,
every image fully decoded), so what this says is unreadable, prepare drops. Understood layouts:
``PATH/<class>/*`` and, already split, ``PATH/{train,val|validation,test}/<class>/*`` (the
owner's split: kept, never pooled). Reported: classes with counts (per split), formats and sizes,
unreadable and non-image files with their reasons, exact duplicates (and those that cross classes
or splits), files outside a class folder, classes too small for the split fractions, and a
suggested input size.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from visionlab.data.layouts import Layout, list_images
from visionlab.data.scanned import Scanned
from visionlab.data.scanning import scan
from visionlab.errors import VisionlabError
from visionlab.params import SplitFractions

SHOWN = 5  # examples listed per problem


@dataclass
class Survey:
    root: Path
    presplit: bool
    files: list[Scanned]
    split_of: dict[str, str]  # rel path -> split, for a pre-split folder
    fractions: SplitFractions
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # every class the folder names, usable or not
    labels: str | None = None  # the CSV layout's file, inside root
    unlisted: int = 0  # files of a CSV layout's folder that no row names

    @property
    def usable(self) -> list[Scanned]:
        return [f for f in self.files if f.reason is None and f.label is not None]

    def counts(self) -> dict[str, Counter]:
        """Usable images per class, per split ("all" for a folder that is not split)."""
        table: dict[str, Counter] = defaultdict(Counter)
        for item in self.usable:
            table[item.label][self.split_of.get(item.rel, "all")] += 1
        return dict(sorted(table.items()))

    def duplicates(self) -> list[list[Scanned]]:
        """Groups of byte-identical files (two or more), largest first."""
        groups: dict[str, list[Scanned]] = defaultdict(list)
        for item in self.usable:  # files outside a class folder are ignored anyway
            groups[item.sha256].append(item)
        return sorted((g for g in groups.values() if len(g) > 1), key=len, reverse=True)

    def too_small(self) -> dict[str, int]:
        """Classes with fewer images than the fractions need to give every split one."""
        if self.presplit:
            return {}
        smallest = min(f for f in (self.fractions.train, self.fractions.val, self.fractions.test) if f > 0)
        need = math.ceil(1 / smallest - 1e-9)
        return {label: n["all"] for label, n in self.counts().items() if n["all"] < need}

    def suggested_size(self) -> int | None:
        """The input side: 224 (the transfer models' native side) unless most photos are smaller."""
        if not self.widths:
            return None
        short = statistics.median(min(w, h) for w, h in zip(self.widths, self.heights, strict=True))
        return 224 if short >= 224 else max(32, int(short) // 32 * 32)


def _jobs(layout: Layout) -> tuple[list[tuple[str, str, str | None]], dict[str, str]]:
    jobs = [(item.path, item.rel, item.label) for item in layout.files]
    return jobs, {item.rel: item.split for item in layout.files if item.split}


def survey(root: Path, fractions: SplitFractions | None = None, workers: int = 0) -> Survey:
    root = Path(root).expanduser()
    labels = None
    if root.is_file() and root.suffix.lower() == ".csv":  # the CSV layout: path,label[,split] rows
        root, labels = root.parent, root.name
    elif not root.is_dir():
        raise VisionlabError(f"{root}: no such folder (or CSV of path,label rows)")
    layout = list_images(root, labels)
    jobs, split_of = _jobs(layout)
    presplit = layout.presplit
    if not any(label for _, _, label in jobs):
        raise VisionlabError(
            f"{root}: no class folders with files: expected {root}/<class>/<image> or "
            f"{root}/train/<class>/<image> (and val/, test/)"
        )
    files = scan(jobs, workers, None)
    result = Survey(root, presplit, files, split_of, fractions or SplitFractions())
    result.classes, result.labels, result.unlisted = layout.classes, labels, layout.unlisted
    from PIL import Image

    for item in result.usable:  # the header only: the scan above already decoded every image
        with Image.open(item.path) as image:
            result.widths.append(image.width)
            result.heights.append(image.height)
    return result


def render(result: Survey) -> str:
    counts = result.counts()
    splits = ["train", "val", "test"] if result.presplit else ["all"]
    present = [s for s in splits if any(n[s] for n in counts.values())]
    layout = (
        f"already split ({', '.join(present)}): the owner's split is kept"
        if result.presplit
        else "class folders"
    )
    if result.labels:
        layout = f"labels from {result.labels}" + ("; " + layout if result.presplit else "")
    lines = [f"{result.root}: {len(result.usable):,} usable images in {len(counts)} classes ({layout})"]
    width = max(len(c) for c in counts)
    for label, n in counts.items():
        per_split = "  ".join(f"{s} {n[s]:,}" for s in present) if result.presplit else f"{n['all']:,}"
        lines.append(f"  {label:<{width}}  {per_split}")
    formats = Counter(f.format for f in result.usable)
    lines.append("formats: " + ", ".join(f"{fmt} {n:,}" for fmt, n in formats.most_common()))
    if result.widths:
        lines.append(
            f"sizes: median {statistics.median(result.widths):.0f}x{statistics.median(result.heights):.0f}, "
            f"smallest side {min(min(w, h) for w, h in zip(result.widths, result.heights, strict=True))} px; "
            f"suggested image_size: {result.suggested_size()}"
        )
    bad = [f for f in result.files if f.reason is not None]
    if bad:
        reasons = Counter(f.reason for f in bad)
        lines.append(f"unusable: {len(bad)} ({', '.join(f'{r} {n}' for r, n in reasons.most_common())})")
        lines += [f"  {f.rel}: {f.reason} ({f.detail})" for f in bad[:SHOWN]]
    if result.unlisted:
        lines.append(f"not listed in {result.labels} (ignored): {result.unlisted} files")
    outside = [f for f in result.files if f.label is None and f.reason is None]
    if outside:
        lines.append(f"outside a class folder (ignored): {len(outside)}, e.g. {outside[0].rel}")
    groups = result.duplicates()
    if groups:
        extra = sum(len(g) - 1 for g in groups)
        crossing = [g for g in groups if len({(f.label, result.split_of.get(f.rel)) for f in g}) > 1]
        lines.append(
            f"exact duplicates: {len(groups)} group{'s' * (len(groups) != 1)} ({extra} extra "
            f"cop{'ies' if extra != 1 else 'y'}; {len(crossing)} across classes"
            + (" or splits" if result.presplit else "")
            + "): prepare keeps one copy, and drops every copy when they sit under two classes"
        )
        lines += ["  " + " = ".join(sorted(f.rel for f in g)) for g in (crossing or groups)[:SHOWN]]
    small = result.too_small()
    if small:
        f = result.fractions
        lines.append(
            f"too small to split {f.train:g}/{f.val:g}/{f.test:g}: "
            + ", ".join(f"{label} ({n})" for label, n in small.items())
            + ": add images, or set the card's split"
        )
    return "\n".join(lines)
