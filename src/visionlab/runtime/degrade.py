"""Photos as users' copies often are: smaller, blurrier, more compressed.

The primitives serve both sides: evaluate scores validation and test degraded at fixed amounts
(``evaluation/robustness.py``), and a model with ``train_degradations`` trains on a share of its
images degraded at amounts drawn around those (:class:`TrainDegradations`). Each works on the
full-size image; the model's usual resize to its input side follows.
"""

from __future__ import annotations

import io
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageFilter

# What a degraded training image gets, drawn uniformly per image: ranges that hold evaluate's
# fixed amounts (downscale_128, jpeg_30, blur_2) inside them, so the model sees those and milder.
DOWNSCALE_SIDES = (64, 160)  # short side in pixels, then back up to the input side
JPEG_QUALITIES = (15, 60)
BLUR_RADII = (0.5, 2.5)


def short_side(image: Image.Image, side: int) -> Image.Image:
    """``image`` with its short side brought down to ``side`` px (unchanged if already smaller)."""
    width, height = image.size
    scale = side / min(width, height)
    if scale >= 1:
        return image  # already that small: nothing lost
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR)


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    """``image`` re-encoded as a JPEG of ``quality`` and decoded again."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def blur(image: Image.Image, radius: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


@dataclass(frozen=True)
class TrainDegradations:
    """Each training image degraded with these probabilities, the same way every epoch or, with
    ``redraw``, drawn afresh every epoch.

    The draw depends on the seed and the image's index (and with ``redraw`` the epoch) only, so a
    preloaded set, a set decoded in worker processes and a resumed run all see the same pixels (and
    featurize can cache them where nothing is redrawn). Picklable, for the loader's workers.
    """

    downscale: float = 0.0
    jpeg: float = 0.0
    blur: float = 0.0
    seed: int = 0
    redraw: bool = False

    @classmethod
    def of(cls, settings: Mapping[str, Any] | None) -> TrainDegradations | None:
        """From ``models.<m>.train_degradations`` (or featurize's record of it); None when off."""
        found = cls(**settings) if settings else None
        return found if found is not None and found.active else None

    @property
    def active(self) -> bool:
        return max(self.downscale, self.jpeg, self.blur) > 0

    def __call__(self, index: int, image: Image.Image, epoch: int = 0) -> Image.Image:
        # A string seed hashes the same in every process; without redraw the epoch is left out.
        draw = random.Random(f"{self.seed}:{epoch}:{index}" if self.redraw else f"{self.seed}:{index}")
        # Every draw happens whether or not it applies, so one probability's change leaves the
        # other degradations of each image where they were.
        picks = [(draw.random(), draw.random()) for _ in range(3)]
        (down, down_at), (blurred, blur_at), (squeezed, quality_at) = picks
        if down < self.downscale:
            image = short_side(image, round(_between(DOWNSCALE_SIDES, down_at)))
        if blurred < self.blur:
            image = blur(image, _between(BLUR_RADII, blur_at))
        if squeezed < self.jpeg:  # last: a re-encoded copy of what came before, as a user's upload is
            image = jpeg(image, round(_between(JPEG_QUALITIES, quality_at)))
        return image


def _between(bounds: tuple[float, float], at: float) -> float:
    low, high = bounds
    return low + (high - low) * at
