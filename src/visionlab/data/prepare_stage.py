"""The prepare stage: walk the class folders, drop what cannot or must not be used, split.

Writes manifests (not copies of the images) and a cleaning report that lists every dropped file
with its reason, so a reader can audit exactly what the experiments trained on.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from visionlab import paths
from visionlab.atomic import atomic_dir
from visionlab.data import near_duplicates
from visionlab.data.cifar import TEST_BATCH, export_batches
from visionlab.data.cleaning import clean
from visionlab.data.cleaning_report import cleaning_report, report_markdown
from visionlab.data.exclusions import load_exclusions
from visionlab.data.folder_source import image_root
from visionlab.data.layouts import list_images
from visionlab.data.manifest import MANIFEST_COLUMNS, write_manifest
from visionlab.data.owner_split import owner_assignment
from visionlab.data.scanned import Scanned
from visionlab.data.scanning import scan
from visionlab.data.split import grouped_split
from visionlab.errors import MissingArtifactError, VisionlabError
from visionlab.params import DatasetCard, Params, PrepareParams, SplitFractions

log = logging.getLogger(__name__)


def _walk(top: Path, card: DatasetCard, dataset: str) -> tuple[list, list[str], Counter, dict[str, str]]:
    """Files to check as ``(path, rel, label)``, the class names, files left out by choice, and
    the owner's split of each file when the folder says one (split folders, a CSV's split column)."""
    if not top.is_dir():
        raise MissingArtifactError(f"{top}: no such folder; run the download stage for {dataset!r} first")
    layout = list_images(top, card.labels)
    names = layout.classes
    if card.classes is not None:
        missing = [c for c in card.classes if c not in names]
        if missing:
            raise VisionlabError(
                f"datasets.{dataset}.classes: {', '.join(missing)} not found in {top} "
                f"({'labels there' if card.labels else 'folders there'}: {', '.join(names)})"
            )
        classes = list(card.classes)
    else:
        classes = names
    if not classes:
        raise VisionlabError(f"{top}: no class folders found (datasets.{dataset}.root)")
    jobs: list[tuple[str, str, str | None]] = []
    owner: dict[str, str] = {}
    left_out: Counter = Counter()
    for item in layout.files:
        if item.label is not None and item.label not in classes:
            left_out[item.label] += 1
            continue
        jobs.append((item.path, item.rel, item.label))
        if item.split is not None:
            owner[item.path] = item.split
    if layout.unlisted:
        left_out[f"(files {card.labels} does not list)"] = layout.unlisted
    return jobs, classes, left_out, owner


def assign_splits(
    kept: list[Scanned],
    settings: PrepareParams,
    official_test: frozenset[str],
    groups: Sequence[dict] = (),
) -> dict[str, str]:
    """Stratified, seeded split; each near-duplicate group inside one split.

    With an official test set, validation is carved from the rest.
    """
    members = [g["members"] for g in groups if len(g["members"]) > 1]
    if not official_test:
        items = [(s.path, s.label) for s in kept]
        return grouped_split(items, members, settings.split, settings.seed)
    pool = settings.split.train + settings.split.val
    fractions = SplitFractions(train=settings.split.train / pool, val=settings.split.val / pool, test=0.0)
    assignment = grouped_split(
        [(s.path, s.label) for s in kept if s.path not in official_test],
        [m for m in members if not official_test.intersection(m)],
        fractions,
        settings.seed,
    )
    assignment.update({s.path: "test" for s in kept if s.path in official_test})
    return assignment


def _hash_method(settings: PrepareParams) -> str | None:
    near = settings.near_duplicates
    return None if near.policy == "off" else near.method


def _scan_image_folder(
    card: DatasetCard, dataset: str, settings: PrepareParams
) -> tuple[list[Scanned], list[str], Counter, dict[str, str]]:
    jobs, classes, left_out, owner = _walk(image_root(card, dataset), card, dataset)
    return scan(jobs, settings.workers, _hash_method(settings)), classes, left_out, owner


def _scan_cifar(
    card: DatasetCard, dataset: str, scratch: Path, out: Path, settings: PrepareParams
) -> tuple[list[Scanned], list[str], frozenset[str]]:
    rows, names = export_batches(paths.raw_dir(dataset) / card.root, scratch, out)
    if card.classes is not None and card.classes != names:
        raise VisionlabError(f"datasets.{dataset}.classes: must be batches.meta's label_names {names}")
    method = _hash_method(settings)
    scanned = []
    for path, label, digest, _ in rows:
        rel = Path(path).relative_to(out).as_posix()
        hashed = near_duplicates.fingerprint(scratch / rel, method) if method else None
        scanned.append(Scanned(path, rel, label, digest, None, "", "RGB", 32 * 32, hashed))
    official_test = frozenset(path for path, _, _, batch in rows if batch == TEST_BATCH)
    return scanned, names, official_test


def prepare_dataset(params: Params, dataset: str) -> Path:
    """Clean and split data set ``dataset``; write ``data/prepared/<dataset>/``."""
    card = params.dataset(dataset)
    root = image_root(card, dataset)
    out = paths.prepared_dir(dataset)
    with atomic_dir(out) as scratch:
        settings = params.prepare
        if card.max_per_class is not None:
            settings = settings.model_copy(update={"max_per_class": card.max_per_class})
        if card.split is not None:
            settings = settings.model_copy(update={"split": card.split})
        if card.near_duplicates is not None:
            settings = settings.model_copy(update={"near_duplicates": card.near_duplicates})
        official_test: frozenset[str] = frozenset()
        left_out: Counter = Counter()
        owner: dict[str, str] = {}
        if card.format == "cifar10_pickle":
            scanned, classes, official_test = _scan_cifar(card, dataset, scratch, out, settings)
        else:
            scanned, classes, left_out, owner = _scan_image_folder(card, dataset, settings)
        exclusions = load_exclusions(Path(card.exclusions)) if card.exclusions else {}
        kept, dropped, unmatched, groups = clean(scanned, exclusions, settings, official_test)
        if not kept:
            raise VisionlabError(f"{root}: no usable images left after cleaning")
        for record in dropped:
            # Files this stage wrote itself (CIFAR's PNGs) are not kept once dropped.
            if record["path"].startswith(out.as_posix() + "/"):
                (scratch / Path(record["path"]).relative_to(out)).unlink(missing_ok=True)
        if owner:
            assignment = owner_assignment(kept, owner, settings.split, settings.seed, groups)
        else:
            assignment = assign_splits(kept, settings, official_test, groups)
        manifest = pd.DataFrame(
            [(s.path, s.label, assignment[s.path], s.sha256) for s in kept], columns=MANIFEST_COLUMNS
        )
        report = cleaning_report(
            dataset, root, classes, scanned, kept, dropped, unmatched, left_out, manifest
        )
        report["official_test_split"] = bool(official_test)
        near = [{**g, "splits": sorted({assignment[m] for m in g["members"]})} for g in groups]
        report["near_duplicates"] = {**settings.near_duplicates.model_dump(), "groups": near}
        report["owner_split"] = sorted(set(owner.values())) if owner else None
        if owner:  # kept where the owner put them: reported, never moved
            crossing = [g for g in near if len(g["splits"]) > 1]
            report["near_duplicates"]["across_owner_splits"] = len(crossing)
            if crossing:
                log.warning(
                    "%s: %d near-duplicate groups cross the owner's splits (kept where they are): %s",
                    dataset, len(crossing), "; ".join(" = ".join(g["members"]) for g in crossing[:3]),
                )  # fmt: skip
        write_manifest(scratch, manifest, classes)
        (scratch / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        (scratch / "report.md").write_text(report_markdown(report))
    log.info("%s: kept %d of %d files; splits %s", dataset, len(kept), len(scanned), report["split_totals"])
    return out
