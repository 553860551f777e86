"""Near-duplicate images: the same photo at another size, crop or compression.

A near-copy in the training split and its twin in the test split inflates test accuracy, so
prepare groups near-copies (a 64-bit perceptual hash per image, Hamming distance up to a
threshold, groups closed transitively) and either keeps each group inside one split or keeps one
member. Hashes need only numpy and Pillow:

- ``phash``: the signs of the 8x8 lowest frequencies of the 32x32 grey image's DCT against their
  median (robust to resizing, recompression and small shifts);
- ``dhash``: whether each pixel of a 9x8 grey thumbnail is brighter than its right neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from visionlab.data.images import to_rgb

HASH_BITS = 64
_PHASH_SIDE = 32


@cache
def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: ``D @ x`` is the DCT of the column vector ``x``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


def _grey(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    if image.format == "JPEG":
        # Decoding at 1/2..1/8 scale is far cheaper and loses nothing a 32x32 thumbnail keeps.
        image.draft("RGB", (size[0] * 4, size[1] * 4))
    grey = to_rgb(image).convert("L").resize(size, Image.Resampling.LANCZOS)
    return np.asarray(grey, dtype=np.float64)


def phash(image: Image.Image) -> int:
    pixels = _grey(image, (_PHASH_SIDE, _PHASH_SIDE))
    dct = _dct_matrix(_PHASH_SIDE)
    low = (dct @ pixels @ dct.T)[:8, :8]
    return _pack(low > np.median(low))


def dhash(image: Image.Image) -> int:
    pixels = _grey(image, (9, 8))
    return _pack(pixels[:, 1:] > pixels[:, :-1])


HASHES = {"phash": phash, "dhash": dhash}


def _pack(bits: np.ndarray) -> int:
    value = 0
    for bit in bits.reshape(-1):
        value = (value << 1) | int(bit)
    return value


def fingerprint(path: Path, method: str) -> int:
    """The ``method`` hash of the image file at ``path``."""
    with Image.open(path) as image:
        return HASHES[method](image)


def close_pairs(hashes: Sequence[int], threshold: int) -> list[tuple[int, int, int]]:
    """``(i, j, distance)`` for every pair ``i < j`` within ``threshold`` bits, in row-blocks."""
    values = np.array(hashes, dtype=np.uint64)
    pairs: list[tuple[int, int, int]] = []
    for start in range(0, len(values), 1024):
        block = np.bitwise_count(values[start : start + 1024, None] ^ values[None, :])
        rows, cols = np.nonzero(block <= threshold)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            if start + row < col:
                pairs.append((start + row, col, int(block[row, col])))
    return pairs


def group(hashes: Sequence[int], threshold: int) -> list[list[int]]:
    """Indices of near-duplicate groups (two or more members), each sorted, in order of first member.

    Grouping is transitive (union-find over the close pairs): if a~b and b~c, all three are one
    group, since any of them in train would leak into a split holding another.
    """
    parent = list(range(len(hashes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in close_pairs(hashes, threshold):
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = {}
    for index in range(len(hashes)):
        members.setdefault(root(index), []).append(index)
    return sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])
