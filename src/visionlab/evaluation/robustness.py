"""The test split as users' photos often are: smaller, blurrier, more compressed; and TTA.

Each degradation works on the full-size photo, then the model's usual resize follows, so
``downscale_128`` is a photo with a 128 px short side brought back up to the input size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from visionlab.data.images import load_rgb
from visionlab.params import DEGRADATION
from visionlab.runtime.degrade import blur, jpeg, short_side
from visionlab.runtime.loaders import ImageDataset

Degrade = Callable[[Image.Image], Image.Image]


def degradation(name: str) -> Degrade:
    """The function an evaluate.robustness name stands for (params/outputs.py validates the names)."""
    kind, amount = DEGRADATION.match(name).groups()  # type: ignore[union-attr]
    value = int(amount)
    if kind == "downscale":
        return lambda image: short_side(image, value)
    if kind == "jpeg":
        return lambda image: jpeg(image, value)
    return lambda image: blur(image, value)


class DegradedImages(ImageDataset):
    """``dataset``'s images, each degraded at full size before the resize to the input side."""

    def __init__(self, dataset: ImageDataset, degrade: Degrade):
        self.__dict__.update(dataset.__dict__)
        self.pixels = None  # never the clean preloaded copies
        self.degrade = None  # the training-time degradations are not the test's
        self.degradation = degrade

    def read(self, index: int) -> Image.Image:
        image = self.degradation(load_rgb(Path(self.paths[index])))
        return image.resize((self.size, self.size), Image.Resampling.BILINEAR)


def hflip_tta(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Log of the mean class probabilities of each image and its mirror image."""

    def predict(inputs: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(model(inputs).float(), 1) + torch.softmax(model(inputs.flip(3)).float(), 1)
        return torch.log(probs / 2)

    return predict
