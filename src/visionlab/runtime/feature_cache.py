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
    """What featurize did: image counts, feature size and ``seconds``, the compute it took."""
    return Path(folder) / "info.json"


def featurize_seconds(experiment: str) -> float:
    """Seconds the featurize stage spent on ``experiment``'s cache (0 when it cached nothing).

    The train stage adds them to its own: a frozen-base head trains in seconds on features that
    took minutes, and the report must show what the model cost.
    """
    try:
        info = json.loads(info_file(paths.features_dir(experiment)).read_text())
        return float(info.get("seconds", 0.0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0.0


def load_features(experiment: str, split: str) -> dict:
    path = feature_file(paths.features_dir(experiment), split)
    if not path.is_file():
        raise MissingArtifactError(f"{path}: no cached features; run the featurize stage first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MissingArtifactError(f"{path}: unreadable feature cache ({exc}); rerun featurize") from None
