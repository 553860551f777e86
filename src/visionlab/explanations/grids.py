"""Tile many small pictures into one image, with numpy alone.

Feature maps of a deep net make thousands of tiles; drawing them as pixels (rather than one
matplotlib axis each) keeps the explain stage fast, and makes every tile recoverable from the
grid by its position (which the tests check).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Grid:
    """A grid image of ``count`` equal tiles, row by row, ``pad`` pixels apart and around."""

    image: np.ndarray
    count: int
    rows: int
    columns: int
    tile: tuple[int, int]  # height, width
    pad: int

    def cell(self, index: int) -> np.ndarray:
        """The pixels of tile ``index`` (row-major), as they were placed."""
        if not 0 <= index < self.count:
            raise IndexError(f"tile {index} of a grid of {self.count}")
        row, column = divmod(index, self.columns)
        top = self.pad + row * (self.tile[0] + self.pad)
        left = self.pad + column * (self.tile[1] + self.pad)
        return self.image[top : top + self.tile[0], left : left + self.tile[1]]


def tile_grid(tiles: Sequence[np.ndarray], columns: int | None = None, pad: int = 2, fill: int = 255) -> Grid:
    """Tiles (all HxW grey or all HxWx3 RGB uint8, same size) in a near-square grid."""
    if not tiles:
        raise ValueError("no tiles to lay out")
    first = tiles[0]
    height, width = first.shape[:2]
    columns = columns or math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    shape = (pad + rows * (height + pad), pad + columns * (width + pad), *first.shape[2:])
    image = np.full(shape, fill, dtype=np.uint8)
    grid = Grid(image, len(tiles), rows, columns, (height, width), pad)
    for index, tile in enumerate(tiles):
        if tile.shape != first.shape:
            raise ValueError(f"tile {index} has shape {tile.shape}, the first {first.shape}")
        grid.cell(index)[...] = tile
    return grid


def upscale(tile: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement: a 3x3 kernel stays nine visible squares."""
    if factor <= 1:
        return tile
    return np.repeat(np.repeat(tile, factor, axis=0), factor, axis=1)


def to_unit(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Values scaled to [0, 1] between ``low`` and ``high`` (default: their own min and max)."""
    low = float(values.min()) if low is None else low
    high = float(values.max()) if high is None else high
    if high - low <= 0:
        return np.zeros_like(values, dtype=np.float32)
    return np.clip((values.astype(np.float32) - low) / (high - low), 0, 1)


def coloured(unit: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """A [0, 1] HxW array as uint8 RGB through a matplotlib colour map."""
    return (colormaps[cmap](unit)[..., :3] * 255).round().astype(np.uint8)


def grey(unit: np.ndarray) -> np.ndarray:
    return (unit * 255).round().astype(np.uint8)


def save_png(pixels: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def captioned_grid(
    tiles: Sequence[np.ndarray], captions: Sequence[str], title: str = "", side: int = 112, columns: int = 4
) -> np.ndarray:
    """RGB tiles enlarged to ``side`` pixels with a caption line under each, and a title on top.

    Drawn with Pillow's built-in bitmap font: far faster than a matplotlib figure per grid.
    """
    line = 12
    rows = -(-len(tiles) // columns) if tiles else 0
    width = columns * (side + 6) + 6
    height = 2 * line + 6 + rows * (side + 2 * line + 6)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 4), title, fill="black")
    for index, (tile, caption) in enumerate(zip(tiles, captions, strict=True)):
        row, column = divmod(index, columns)
        left, top = 6 + column * (side + 6), 2 * line + 6 + row * (side + 2 * line + 6)
        picture = Image.fromarray(tile).convert("RGB").resize((side, side), Image.Resampling.NEAREST)
        canvas.paste(picture, (left, top))
        for number, text in enumerate(caption.split("\n")[:2]):
            draw.text((left, top + side + 1 + number * line), text[: side // 6], fill="black")
    return np.asarray(canvas)
