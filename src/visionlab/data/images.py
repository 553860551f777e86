"""Decode, check and normalise image files.

One loader serves every stage, so that cleaning, augmentation, training and explanation all see
the same pixels: EXIF orientation applied, palette/grey/CMYK converted, transparency flattened on
white.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

# Photos of the real data sets are far below this; a bigger "image" is hostile or broken.
Image.MAX_IMAGE_PIXELS = 200_000_000

EMPTY = "empty"
NOT_AN_IMAGE = "not_an_image"
TRUNCATED = "truncated"
UNDECODABLE = "undecodable"


@dataclass(frozen=True)
class ImageCheck:
    """The verdict on one file: ``reason`` is None for a usable image."""

    reason: str | None
    detail: str = ""
    format: str | None = None
    mode: str | None = None
    width: int = 0
    height: int = 0


def check_image(path: Path) -> ImageCheck:
    """Fully decode ``path`` and say whether it is a usable image, and if not, why."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return ImageCheck(UNDECODABLE, f"cannot read: {exc.strerror}")
    if size == 0:
        return ImageCheck(EMPTY, "zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                fmt, mode = image.format, image.mode
                image.load()
                width, height = image.size
                to_rgb(image)  # what every later stage does: EXIF, palette and mode conversion
    except UnidentifiedImageError:
        return ImageCheck(NOT_AN_IMAGE, "not a format Pillow can identify")
    except OSError as exc:
        text = str(exc)
        reason = TRUNCATED if "truncated" in text or "broken data stream" in text else UNDECODABLE
        return ImageCheck(reason, text)
    except Exception as exc:  # any failure to decode means the file cannot be used
        return ImageCheck(UNDECODABLE, f"{type(exc).__name__}: {exc}")
    if width < 1 or height < 1:
        return ImageCheck(UNDECODABLE, f"degenerate size {width}x{height}")
    return ImageCheck(None, "", fmt, mode, width, height)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to RGB; transparent pixels become white rather than arbitrary colours."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda value: value / 256).convert("L")
    return image.convert("RGB")


# A JPEG at least this many times the input side on both axes is decoded at a reduced scale (libjpeg
# scales by 1/2, 1/4 or 1/8 in the DCT, never below this multiple), then resized as any other image:
# a 4000x3000 photo for 224 px decodes about 4x faster, its pixels within a few levels of the full
# decode's (tests/test_images.py). Smaller files, every image of the shipped data sets at their
# input sizes included, decode exactly as before. 0 turns it off (benchmarks/large_photos.py).
DRAFT_MARGIN = 2


def load_rgb(path: Path, size: int | None = None) -> Image.Image:
    """Load ``path`` as RGB, optionally resized to a ``size`` x ``size`` square."""
    with Image.open(path) as image:
        if size is not None and DRAFT_MARGIN:
            image.draft(None, (size * DRAFT_MARGIN, size * DRAFT_MARGIN))  # a no-op but for JPEGs
        rgb = to_rgb(image)
        rgb.load()
    if size is not None and rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return rgb
