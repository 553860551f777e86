"""How hard a JPEG file was compressed: the IJG quality (1-100) whose luminance table is nearest
the file's own, read from its header without decoding the pixels.

libjpeg, Pillow, OpenCV and most web tools scale the IJG tables by that quality, so their files
match one exactly; a camera's or an editor's own tables get the nearest (a log-scale mean
distance, since each table entry is a step size).
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image


@cache
def _ijg_tables() -> np.ndarray:
    """Row q-1: the luminance table Pillow's encoder writes at quality q (natural order, as read)."""
    blank = Image.new("RGB", (8, 8))
    tables = []
    for quality in range(1, 101):
        buffer = io.BytesIO()
        blank.save(buffer, "JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as encoded:
            tables.append(list(encoded.quantization[0]))
    return np.log(np.asarray(tables, dtype=np.float64))


def jpeg_quality(path: Path) -> int | None:
    """The estimated quality of the JPEG file at ``path``, or None: not a JPEG (or no table read)."""
    try:
        with Image.open(path) as image:
            tables = getattr(image, "quantization", None) if image.format == "JPEG" else None
            luminance = None if not tables else tables.get(0)
    except OSError:
        return None  # the loader says why the file cannot be read
    if luminance is None or len(luminance) != 64:
        return None
    distance = np.abs(_ijg_tables() - np.log(np.asarray(luminance, dtype=np.float64))).mean(axis=1)
    return int(np.argmin(distance)) + 1
