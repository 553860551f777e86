"""The featurize stage's output format, read back by the train stage.

Here rather than in the featurize stage's module, so the train stage never imports another stage.
"""

from __future__ import annotations

from pathlib import Path

import torch

from visionlab import paths
from visionlab.errors import MissingArtifactError

CACHED_SPLITS = ("train", "val")


def feature_file(folder: Path, split: str) -> Path:
    """``{features, labels, paths}`` of one split, saved with ``torch.save``."""
    return Path(folder) / f"{split}.pt"


def load_features(experiment: str, split: str) -> dict:
    path = feature_file(paths.features_dir(experiment), split)
    if not path.is_file():
        raise MissingArtifactError(f"{path}: no cached features; run the featurize stage first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MissingArtifactError(f"{path}: unreadable feature cache ({exc}); rerun featurize") from None
