"""The explanation gallery stays small enough to open fast, whatever the images."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionlab.explanations.gallery import ENCODINGS, PAGE_BUDGET, render

KINDS = (
    "gradcam",
    "gradcam_overlay",
    "gradcam_pp",
    "gradcam_pp_overlay",
    "guided_backprop",
    "guided_gradcam",
)


def _photo(seed: int, side: int, noise: float) -> np.ndarray:
    """Photo-like pixels: smooth colour fields plus grain (``noise`` 1.0: pure noise, the worst case)."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize(
        (side, side), Image.BICUBIC
    )
    grain = rng.integers(0, 256, (side, side, 3)).astype(np.float32)
    return ((1 - noise) * np.asarray(coarse, np.float32) + noise * grain).clip(0, 255).astype(np.uint8)


def _full_flowers_index(folder: Path, noise: float) -> dict:
    """The shape of a full flowers experiment's index: 42 test images x (input + 7 explanations)
    ~ 300 pictures of 299 px, plus a wide overview grid. Files repeat (12 distinct images)
    to keep the test fast; the page embeds each figure anyway."""
    pictures = []
    for n in range(12):
        name = f"img-{n}.png"
        Image.fromarray(_photo(n, 299, noise)).save(folder / name)
        pictures.append(name)
    Image.fromarray(np.hstack([_photo(99, 299, noise)] * 4)).save(folder / "grid.png")
    images = []
    for n in range(42):
        pick = [pictures[(n + k) % len(pictures)] for k in range(7)]
        images.append(
            {
                "source": f"data/prepared/flowers/roses/{n}.jpg",
                "label": "roses",
                "predicted": "roses",
                "confidence": 0.9,
                "correct": True,
                "image": pick[0],
                "explanations": [
                    {"class": "roses", "probability": 0.9, **dict(zip(KINDS, pick[1:], strict=True))}
                ],
            }
        )
    return {
        "experiment": "flowers-inceptionv3",
        "arch": "inception_v3",
        "image_size": 299,
        "classes": ["daisy", "dandelion", "roses", "sunflowers", "tulips"],
        "layer": "Mixed_7c",
        "grid": "grid.png",
        "images": images,
    }


def _embedded(html: str) -> list[Image.Image]:
    sources = re.findall(r'<img src="data:image/(?:png|webp);base64,([^"]+)"', html)
    assert len(sources) == html.count("<img ")
    return [Image.open(io.BytesIO(base64.b64decode(s))) for s in sources]


@pytest.mark.parametrize("noise", [0.15, 1.0])
def test_a_full_data_sets_gallery_stays_under_the_budget(tmp_path: Path, noise: float) -> None:
    index = _full_flowers_index(tmp_path, noise)
    html = render(index, tmp_path)
    images = _embedded(html)
    assert len(images) == 1 + 42 * 7
    # Embedding the PNGs as they are (as the gallery used to) would be several times the budget.
    as_pngs = sum((tmp_path / f).stat().st_size for f in _files(index)) * 4 / 3
    assert as_pngs > 2 * PAGE_BUDGET
    assert len(html.encode()) <= PAGE_BUDGET
    for image in images[1:]:
        assert max(image.size) <= ENCODINGS[0].side
    if noise < 0.5:
        # Photo-like pictures fit at display size and the best quality: no need to shrink further.
        assert all(max(image.size) == 220 for image in images[1:])
        assert images[0].size == (900, round(299 * 900 / (4 * 299)))


def _files(index: dict) -> list[str]:
    files = [index["grid"]]
    for record in index["images"]:
        files.append(record["image"])
        for item in record["explanations"]:
            files += [item[kind] for kind in KINDS]
    return files


def test_pictures_shown_at_their_own_size_stay_exact(tmp_path: Path) -> None:
    """A filter tile or a small input is embedded pixel for pixel (PNG or lossless WebP)."""
    from visionlab.explanations.gallery import embedded_bytes

    tiles = np.kron(np.arange(16, dtype=np.uint8).reshape(4, 4) * 16, np.ones((8, 8), np.uint8))
    Image.fromarray(np.stack([tiles, 255 - tiles, tiles // 2], -1)).save(tmp_path / "filters.png")
    Image.fromarray(_photo(1, 64, 0.3)).save(tmp_path / "small.png")
    for name in ("filters.png", "small.png"):
        mime, payload = embedded_bytes(tmp_path / name, (220, 220), 30)
        assert mime in ("image/png", "image/webp")
        assert len(payload) <= (tmp_path / name).stat().st_size
        shown = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))
        assert np.array_equal(shown, np.asarray(Image.open(tmp_path / name).convert("RGB")))
