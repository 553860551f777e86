"""What every explanation of one model needs: the model, its input geometry, the output folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from visionlab.errors import VisionlabError
from visionlab.explanations.grids import save_png
from visionlab.models import Checkpoint, Classifier
from visionlab.params import ExplainParams
from visionlab.runtime.preprocess import is_grey, load_pixels, to_tensor


def slug(text: str) -> str:
    """A file-name-safe form of a class or layer name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


class ExplainContext:
    """The model, its classes and input geometry, the settings and the folder files are saved in."""

    def __init__(self, trained: Checkpoint, settings: ExplainParams, folder: Path):
        self.model: Classifier = trained.model
        self.classes: list[str] = list(trained.classes)
        self.size: int = trained.image_size
        self.grey = is_grey(trained.model, trained.grayscale)
        self.arch: str = trained.spec.arch
        self.settings = settings
        self.folder = folder
        self.index = {name: i for i, name in enumerate(self.classes)}

    def pixels(self, path: str) -> np.ndarray:
        try:
            return load_pixels(Path(path), self.size, self.grey)
        except Exception as exc:  # any decoding failure: name the file
            raise VisionlabError(
                f"{path}: cannot read the test image ({exc}); rerun the prepare stage"
            ) from None

    def tensor(self, pixels: np.ndarray) -> torch.Tensor:
        return to_tensor(pixels, self.model)

    def class_index(self, name: str, key: str) -> int:
        if name not in self.index:
            raise VisionlabError(f"explain.{key}: no class {name!r} (classes: {', '.join(self.classes)})")
        return self.index[name]

    def save(self, pixels: np.ndarray, relative: str) -> str:
        save_png(pixels, self.folder / relative)
        return relative
