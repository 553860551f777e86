"""Images as a model sees them, in one place: training, evaluation, explanations and predict all
turn a file into the network's input with these functions, so they cannot drift apart.

Two steps, kept apart because the explanations save the uint8 pixels they explained (inputs,
patches): a saved picture fed back through :func:`normalise` gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from visionlab.data.images import load_rgb


class Normalisation(Protocol):
    """What a network's input needs: a classifier, or a picklable stand-in for a loader worker."""

    in_channels: int
    mean: Sequence[float]
    std: Sequence[float]


def is_grey(model: Normalisation, grayscale: bool) -> bool:
    """A grey data set, or a network that takes one channel, reads its images grey."""
    return grayscale or model.in_channels == 1


def image_pixels(image: Image.Image, grey: bool) -> np.ndarray:
    """uint8 pixels of an RGB image already at the input size: HxW when grey, HxWx3 otherwise."""
    return np.asarray(image.convert("L") if grey else image, dtype=np.uint8)


def load_pixels(path: Path, size: int, grey: bool) -> np.ndarray:
    """uint8 pixels of an image file resized to the square input side (see :func:`image_pixels`)."""
    return image_pixels(load_rgb(Path(path), size), grey)


def to_chw(pixels: np.ndarray) -> torch.Tensor:
    """HxW or HxWxC uint8 pixels as a CxHxW uint8 tensor (its own memory)."""
    array = pixels.reshape(*pixels.shape[:2], -1)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


class Normaliser:
    """uint8 CxHxW pixels to the network's float input: scaled to [0, 1], channels repeated to the
    network's count (a grey image for an RGB network), then the network's mean and std."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels: int) -> None:
        self.channels = channels
        self.mean = torch.tensor(mean[:channels]).view(channels, 1, 1)
        self.std = torch.tensor(std[:channels]).view(channels, 1, 1)

    @classmethod
    def of(cls, model: Normalisation) -> Normaliser:
        return cls(model.mean, model.std, model.in_channels)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        tensor = pixels.float().div_(255.0).expand(self.channels, -1, -1)
        return (tensor - self.mean) / self.std


def to_tensor(pixels: np.ndarray, model: Normalisation) -> torch.Tensor:
    """The normalised CHW input for uint8 pixels (HxW or HxWxC)."""
    return Normaliser.of(model)(to_chw(pixels))


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 for display (a grey image repeated over three channels)."""
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
