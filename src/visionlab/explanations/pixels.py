"""Images as the model sees them: the uint8 pixels, and the normalised tensor made from them.

Mirrors :meth:`visionlab.training.data.ImageDataset.load` step for step, but keeps the uint8
pixels too: pictures saved by the explanations (inputs, patches) are exactly the pixels that were
explained, so a saved patch can be fed back to the model and give the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from visionlab.data.images import load_rgb
from visionlab.models import Classifier


def is_grey(model: Classifier, grayscale: bool) -> bool:
    return grayscale or model.in_channels == 1


def load_pixels(path: Path, size: int, grey: bool) -> np.ndarray:
    """uint8 pixels, HxW for a grey model, HxWx3 otherwise, resized as training resized them."""
    image = load_rgb(Path(path), size)
    if grey:
        image = image.convert("L")
    return np.asarray(image, dtype=np.uint8)


def to_tensor(pixels: np.ndarray, model: Classifier) -> torch.Tensor:
    """The normalised CHW tensor for uint8 pixels (HxW or HxWxC): the model's mean, std, channels."""
    channels = model.in_channels
    array = pixels.reshape(*pixels.shape[:2], -1)
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)
    tensor = tensor.expand(channels, -1, -1)
    mean = torch.tensor(model.mean[:channels]).view(channels, 1, 1)
    std = torch.tensor(model.std[:channels]).view(channels, 1, 1)
    return (tensor - mean) / std


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 for display (a grey image repeated over three channels)."""
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
