"""CIFAR-10's python batches, read without trusting them, and written out as PNG files.

A pickle runs whatever callables it names, so a batch from a mirror is read by an unpickler that
resolves only what the format holds: numpy's array reconstruction, ``numpy.dtype``, and the
latin-1 ``_codecs.encode`` that Python 3 uses for bytes in protocol 2. Anything else is refused
with the name it asked for.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from visionlab.errors import UnsafeArchiveError, VisionlabError

_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_ -]{0,63}")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not part of the format")
    return codecs.encode(text, "latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a CIFAR-10 batch needs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) in _ARRAY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def _text(value: Any) -> Any:
    return value.decode("latin1") if isinstance(value, bytes) else value


def load_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR batch or meta file as a dict with str keys; hostile content raises."""
    try:
        with open(path, "rb") as handle:
            loaded = RestrictedUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError:
        raise VisionlabError(f"{path}: missing from the CIFAR-10 archive") from None
    except Exception as exc:  # a hostile pickle can raise anything; none of it may escape raw
        raise UnsafeArchiveError(f"{path}: refused: not a plain CIFAR-10 pickle ({exc})") from None
    if not isinstance(loaded, dict):
        raise UnsafeArchiveError(f"{path}: refused: expected a dict, got {type(loaded).__name__}")
    return {_text(key): value for key, value in loaded.items()}


def label_names(root: Path) -> list[str]:
    meta = load_pickle(root / META)
    names = [_text(n) for n in meta.get("label_names", [])]
    if not names or not all(isinstance(n, str) for n in names):
        raise VisionlabError(f"{root / META}: no label_names list")
    # Names become folder names: nothing that could leave the output folder.
    bad = [n for n in names if not _SAFE_NAME.fullmatch(n)]
    if bad or len(set(names)) != len(names):
        raise UnsafeArchiveError(
            f"{root / META}: refused: label names must be unique plain names, got {bad or names}"
        )
    return names


def read_batch(path: Path, num_classes: int) -> tuple[np.ndarray, list[int]]:
    """Images as N x 32 x 32 x 3 uint8 and their labels, checked against the format."""
    batch = load_pickle(path)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise VisionlabError(f"{path}: 'data' is not an N x 3072 uint8 array")
    if not isinstance(labels, list) or len(labels) != len(data):
        raise VisionlabError(f"{path}: 'labels' is not a list with one label per image")
    if any(not isinstance(x, int) or not 0 <= x < num_classes for x in labels):
        raise VisionlabError(f"{path}: labels outside 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def export_batches(
    root: Path, scratch: Path, final: Path
) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """Write every image as ``images/<class>/<batch>-<index>.png`` under ``scratch``.

    Returns ``(final path, label, sha256, batch)`` rows (paths as they will be once ``scratch``
    becomes ``final``) and the class names.
    """
    names = label_names(root)
    present = [b for b in TRAIN_BATCHES if (root / b).is_file()]
    if not present:
        raise VisionlabError(f"{root}: no data_batch_* files")
    rows = []
    for batch in [*present, TEST_BATCH]:
        images, labels = read_batch(root / batch, len(names))
        for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            relative = Path("images") / names[label] / f"{batch}-{index:05d}.png"
            data = png_bytes(pixels)
            (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
            (scratch / relative).write_bytes(data)
            rows.append(
                ((final / relative).as_posix(), names[label], hashlib.sha256(data).hexdigest(), batch)
            )
    return rows, names
