"""The test split as users' photos often are: smaller, blurrier, more compressed; and TTA.

Each degradation works on the full-size photo, then the model's usual resize follows, so
``downscale_128`` is a photo with a 128 px short side brought back up to the input size.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image, ImageFilter

from visionlab.data.images import load_rgb
from visionlab.params import DEGRADATION
from visionlab.runtime.loaders import ImageDataset

Degrade = Callable[[Image.Image], Image.Image]


def degradation(name: str) -> Degrade:
    """The function an evaluate.robustness name stands for (params/outputs.py validates the names)."""
    kind, amount = DEGRADATION.match(name).groups()  # type: ignore[union-attr]
    value = int(amount)
    if kind == "downscale":
        return lambda image: _short_side(image, value)
    if kind == "jpeg":
        return lambda image: _jpeg(image, value)
    return lambda image: image.filter(ImageFilter.GaussianBlur(value))


def _short_side(image: Image.Image, side: int) -> Image.Image:
    width, height = image.size
    scale = side / min(width, height)
    if scale >= 1:
        return image  # already that small: nothing lost
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


class DegradedImages(ImageDataset):
    """``dataset``'s images, each degraded at full size before the resize to the input side."""

    def __init__(self, dataset: ImageDataset, degrade: Degrade):
        self.__dict__.update(dataset.__dict__)
        self.pixels = None  # never the clean preloaded copies
        self.degrade = degrade

    def read(self, index: int) -> Image.Image:
        image = self.degrade(load_rgb(Path(self.paths[index])))
        return image.resize((self.size, self.size), Image.Resampling.BILINEAR)


def hflip_tta(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Log of the mean class probabilities of each image and its mirror image."""

    def predict(inputs: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(model(inputs).float(), 1) + torch.softmax(model(inputs.flip(3)).float(), 1)
        return torch.log(probs / 2)

    return predict
