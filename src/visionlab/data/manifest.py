"""The manifest format that prepare and augment write and every later stage reads.

A manifest folder holds ``manifest.csv`` (one row per image) and ``classes.json`` (the class names
in label-index order). It lives here, below the stages, so a reader never imports a stage module.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from visionlab.errors import MissingArtifactError

MANIFEST_COLUMNS = ["path", "label", "split", "sha256"]


def write_manifest(folder: Path, manifest: pd.DataFrame, classes: list[str]) -> None:
    """``manifest.csv`` and ``classes.json`` in ``folder`` (a stage's scratch folder)."""
    manifest.to_csv(folder / "manifest.csv", index=False)
    (folder / "classes.json").write_text(json.dumps(classes, indent=2) + "\n")


def read_manifest(folder: Path) -> tuple[pd.DataFrame, list[str]]:
    """A prepared (or augmented) manifest and the class names in label-index order."""
    folder = Path(folder)
    try:
        # Labels stay strings: a class folder named "1" or "NA" must not turn into a number or NaN.
        manifest = pd.read_csv(
            folder / "manifest.csv", dtype={"path": str, "label": str}, keep_default_na=False
        )
        classes = json.loads((folder / "classes.json").read_text())
    except FileNotFoundError as exc:
        raise MissingArtifactError(
            f"{exc.filename}: missing; run the stage that writes {folder} first"
        ) from None
    return manifest, classes
