"""Full-scale rows' per-image answers, small enough to commit: one bit per image and copy.

paired.py tests two rows on the images exactly one of them gets right. Those answers live in each
row's evaluate output, in the work folder the row ran in: a rerun, a cleaned cache or another
machine loses them, and with them the means to test the pair again. So paired.py commits them
here. Each answer column (the plain test images, each degraded or TTA copy, validation) is
stored as the sha256 of its sorted image paths (which images, in which order) and one bit per
image in that order, base64: about 1.7 KB for CIFAR-10's 10,000 test photos, where
predictions.csv is about 1 MB.

Decoded, an answer column is indexed ``<sha256 prefix>:<position>``: two rows' columns line up
exactly when they answered the same images, which is all a paired test needs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

STORE = "answers.json"  # in benchmarks/results/


def encode(answers: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Column -> {images, paths_sha256, right}: each column's answered images (NaN: not answered)."""
    encoded = {}
    for column in answers:
        known = answers[column].dropna()
        paths = sorted(str(path) for path in known.index)
        right = known.set_axis([str(path) for path in known.index]).reindex(paths).astype(bool)
        encoded[str(column)] = {
            "images": len(paths),
            "paths_sha256": hashlib.sha256("\n".join(paths).encode()).hexdigest(),
            "right": base64.b64encode(np.packbits(right.to_numpy())).decode("ascii"),
        }
    return encoded


def decode(encoded: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The answer table again, one column per copy, indexed by ``<images' sha256 prefix>:<position>``."""
    columns = {}
    for column, entry in encoded.items():
        try:
            count, packed = int(entry["images"]), base64.b64decode(entry["right"], validate=True)
            prefix = str(entry["paths_sha256"])[:16]
        except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
            raise ValueError(f"{column}: unreadable ({exc!r})") from None
        bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8))
        if len(bits) < count or len(bits) - count >= 8:
            raise ValueError(f"{column}: {len(bits)} bits stored for {count} images")
        columns[column] = pd.Series(
            bits[:count].astype(bool), index=[f"{prefix}:{i}" for i in range(count)], dtype=object
        )
    return pd.DataFrame(columns)


def canonical(answers: pd.DataFrame) -> pd.DataFrame:
    """``answers`` as they read back from the store, so fresh and stored answers compare alike."""
    return decode(encode(answers))


def load(results: Path) -> dict[str, dict[str, Any]]:
    """Experiment -> {evaluate: the evaluate output's md5 the answers are from, copies: encoded}."""
    path = results / STORE
    if not path.is_file():
        return {}
    try:
        rows = json.loads(path.read_text()).get("rows") or {}
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not an answers store ({exc}); restore it with git") from None
    if not isinstance(rows, dict):
        raise ValueError(f"{path}: rows is not a mapping of experiments; restore it with git")
    return rows


def save(results: Path, rows: dict[str, dict[str, Any]], commit: str) -> None:
    """Write the store, one row per line block, in a stable order (a rerun changes only what moved)."""
    data = {"commit": commit, "rows": dict(sorted(rows.items()))}
    (results / STORE).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
