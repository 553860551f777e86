"""Evaluate's per-image answers: where they live and how a report reads them back.

Test's go to ``predictions.csv`` (with each degraded or TTA copy's answer beside the plain one) and
validation's to ``val_predictions.csv``, both in ``data/eval/<experiment>/``: with them two models
are compared image by image, on test, and on validation, where the choice between them was made.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.csv"
VAL_PREDICTIONS = "val_predictions.csv"


def read_answers(path: Path) -> pd.Series | None:
    """Image path -> right or wrong, from one predictions file; None where it is absent or unreadable."""
    if not path.is_file():
        return None  # not evaluated yet, or (validation's) evaluated before it was written
    try:
        predictions = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); left out of the paired tests", path, exc)
        return None
    if not {"path", "correct"} <= set(predictions.columns):
        return None
    return predictions.set_index("path")["correct"].astype(bool)


def cached_files(cache: Path, directory_hash: str) -> dict[str, Path] | None:
    """The files of an evaluate output in a DVC cache (``cache``: its ``files/md5`` folder), by
    name, from the output's ``.dir`` manifest; None if the cache does not hold it or its answers.

    DVC keeps every run's outputs there, so the answers of an experiment, a baseline or a seed that
    the workspace has since replaced can still be read by the hash `dvc.lock` or `dvc exp show` gave.
    """
    manifest = cache / directory_hash[:2] / directory_hash[2:]
    if not directory_hash.endswith(".dir") or not manifest.is_file():
        return None
    try:
        entries = json.loads(manifest.read_text())
        files = {entry["relpath"]: cache / entry["md5"][:2] / entry["md5"][2:] for entry in entries}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable DVC manifest (%s)", manifest, exc)
        return None
    return files if PREDICTIONS in files and files[PREDICTIONS].is_file() else None
