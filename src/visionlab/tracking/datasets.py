"""Which images a run saw, on its MLflow run page: one logged data set input per split.

Each split of the prepared data set is an MLflow data set named ``<dataset>/<split>`` whose digest
is the prepared manifest's hash (the same manifest gives the same digest in every run), whose
source is the archive's (redacted) address (a folder source's path and content hash), and whose
profile holds the split's image counts per class and the cleaning report's counts. The input's
context tag says how the run used it (train / validation / test).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from visionlab import paths
from visionlab.params import DatasetCard
from visionlab.redaction import redact
from visionlab.tracking.mlflow_run import TrackedRun

CONTEXTS = {"train": "train", "val": "validation", "test": "test"}
DIGEST_LENGTH = 32  # MLflow stores at most 36 characters of a digest


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def archive_source(card: DatasetCard, dataset: str) -> tuple[str, str]:
    """``(source type, address)`` the data set's archive came from, credentials removed.

    The download stage's record holds the address actually used (a mirror, Kaggle); before it
    exists, the card's own address.
    """
    record = _read_json(paths.raw_record(dataset)) or {}
    address = record.get("url") or card.source.url or f"kaggle:{card.source.kaggle}"
    address = redact(str(address))
    if address.startswith(("http://", "https://")):
        return "http", address
    if address.startswith("kaggle:"):
        return "kaggle", address
    return "local", os.path.normpath(address)  # a mirror given as ../shared/...: no `..` in MLflow


def _cleaning_summary(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    keys = ("files_seen", "images_kept", "dropped_by_reason", "split_totals", "exclusions_not_found")
    return {key: report[key] for key in keys if key in report}


def dataset_inputs(
    card: DatasetCard, dataset: str, splits: Mapping[str, pd.DataFrame], augmented: bool = False
) -> list[DatasetInput]:
    """One MLflow data set input per split the run used (``splits``: the rows of each split)."""
    prepared = paths.prepared_dir(dataset)
    manifest_hash = hashlib.sha256((prepared / "manifest.csv").read_bytes()).hexdigest()
    source_type, source = archive_source(card, dataset)
    address: dict[str, str] = {"url": source}
    if card.source.folder is not None:  # a folder read in place: its content, as the survey hashed it
        address["content_sha256"] = str((_read_json(paths.raw_record(dataset)) or {}).get("sha256"))
    cleaning = _cleaning_summary(_read_json(prepared / "report.json"))
    inputs = []
    for split, rows in splits.items():
        profile: dict[str, Any] = {
            "images": len(rows),
            "per_class": {str(k): int(v) for k, v in rows.label.value_counts().sort_index().items()},
            "manifest": (prepared / "manifest.csv").as_posix(),
            "manifest_sha256": manifest_hash,
        }
        if split == "train" and augmented:
            profile["augmented"] = "augmented copies of the training split (data/augmented)"
        if cleaning is not None:
            profile["cleaning"] = cleaning
        entity = Dataset(
            name=f"{dataset}/{split}",
            digest=manifest_hash[:DIGEST_LENGTH],
            source_type=source_type,
            source=json.dumps(address),
            schema=json.dumps({"columns": [str(c) for c in rows.columns]}),
            profile=json.dumps(profile),
        )
        context = InputTag(key=MLFLOW_DATASET_CONTEXT, value=CONTEXTS.get(split, split))
        inputs.append(DatasetInput(dataset=entity, tags=[context]))
    return inputs


def log_datasets(
    run: TrackedRun,
    card: DatasetCard,
    dataset: str,
    splits: Mapping[str, pd.DataFrame],
    augmented: bool = False,
) -> None:
    """Log the run's data set inputs (see the module docstring)."""
    run.client.log_inputs(run.run_id, dataset_inputs(card, dataset, splits, augmented))
