"""The featurize stage's output format, read back by the train stage.

Here rather than in the featurize stage's module, so the train stage never imports another stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from visionlab import paths
from visionlab.errors import MissingArtifactError

CACHED_SPLITS = ("train", "val")


def feature_file(folder: Path, split: str) -> Path:
    """``{features, labels, paths}`` of one split, saved with ``torch.save``."""
    return Path(folder) / f"{split}.pt"


def info_file(folder: Path) -> Path:
    """What featurize did: image counts, feature size, the cut and the cache's shape (no timing)."""
    return Path(folder) / "info.json"


def featurize_seconds(experiment: str, root: Path = Path(".")) -> float | None:
    """Seconds the featurize stage spent on ``experiment``'s cache; None when it cached nothing.

    The train stage adds them to its own: a frozen-base head trains in seconds on features that
    took minutes, and the report must show what the model cost. Read from the stage's timing file
    (``paths.featurize_timing_file``); a cache written before that file existed kept them in its
    info.json.
    """
    for path in (
        root / paths.featurize_timing_file(experiment),
        info_file(root / paths.features_dir(experiment)),
    ):
        try:
            seconds = json.loads(path.read_text()).get("seconds")
        except (OSError, ValueError, AttributeError):
            continue
        return float(seconds) if isinstance(seconds, int | float) else None
    return None


def load_features(experiment: str, split: str) -> dict:
    path = feature_file(paths.features_dir(experiment), split)
    if not path.is_file():
        raise MissingArtifactError(f"{path}: no cached features; run the featurize stage first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MissingArtifactError(f"{path}: unreadable feature cache ({exc}); rerun featurize") from None
