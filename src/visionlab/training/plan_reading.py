"""How long `visionlab plan` counts for reading a data set's files: the stages' own loader item of
up to ``DECODE_FILES`` of them (a synthetic photo before they are here), and the training images'
degradations (``train_degradations``), each timed on the same files."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from visionlab import paths
from visionlab.data.folder_source import folder_path
from visionlab.data.images import load_rgb
from visionlab.params import Params
from visionlab.runtime.degrade import TrainDegradations
from visionlab.runtime.loaders import ImageDataset
from visionlab.training.plan_counts import IMAGE_SUFFIXES

DECODE_FILES = 16  # files of the data set read as the stages' loader reads them


def sample_files(params: Params, dataset: str, root: Path) -> list[Path]:
    """Up to ``DECODE_FILES`` of the data set's own images, spread over it, when they are on disk."""
    manifest = root / paths.prepared_dir(dataset) / "manifest.csv"
    found: list[Path] = []
    if manifest.is_file():
        import pandas as pd

        found = [
            p if p.is_absolute() else root / p
            for p in map(Path, pd.read_csv(manifest, usecols=["path"]).path)
        ]
    else:
        card = params.dataset(dataset)
        top = folder_path(card) if card.source.folder else root / paths.raw_dir(dataset)
        if card.format == "image_folder" and top.is_dir():
            found = sorted(p for p in (top / card.root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    step = max(len(found) // DECODE_FILES, 1)
    return [p for p in found[::step][:DECODE_FILES] if p.is_file()]


@contextmanager
def _probe_files(params: Params, dataset: str, root: Path) -> Iterator[list[Path]]:
    """The data set's sample files when they are here, else a synthetic photo (a 500x375 JPEG;
    CIFAR-10's 32 px PNGs for its pickle format), for as long as the block runs."""
    files = sample_files(params, dataset, root)
    with tempfile.TemporaryDirectory() as scratch:
        if not files:
            cifar = params.dataset(dataset).format == "cifar10_pickle"
            side, name = ((32, 32), "probe.png") if cifar else ((500, 375), "probe.jpg")
            synthetic = Path(scratch) / name
            pixels = np.random.default_rng(0).integers(0, 255, (side[1], side[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(synthetic, quality=90)
            files = [synthetic] * 4
        yield files


def _mean_seconds(call: Callable[[int], object], count: int) -> float:
    """Mean seconds of ``call(i)`` for i in range(count), after one warm-up call (imports, caches)."""
    call(0)
    started = time.perf_counter()
    for index in range(count):
        call(index)
    return (time.perf_counter() - started) / count


def decode_seconds(params: Params, dataset: str, size: int, grey: bool, root: Path) -> float:
    """Seconds per image that featurize and evaluate spend reading a file into the network's input:
    the stages' own ``ImageDataset`` item (decoded, resized, normalised) of the data set's files
    (:func:`_probe_files`). The normalising costs a net at 128 px about as much as the decoding."""
    with _probe_files(params, dataset, root) as files:
        channels = 1 if grey else 3
        mean, std = [0.5] * channels, [0.25] * channels
        read = ImageDataset(files, [0] * len(files), size, mean, std, grey, channels)
        return _mean_seconds(lambda i: read[i], len(files))


def degrade_seconds(
    params: Params, dataset: str, size: int, degradations: TrainDegradations, root: Path
) -> float:
    """More seconds per training image that featurize spends with ``train_degradations`` on.

    A degraded image is decoded at full size (no JPEG draft), degraded, then resized, as the
    loader reads it: the full decode is counted for every training image, each degradation by
    its share, timed through ``TrainDegradations`` itself with that one degradation always on.
    """
    with _probe_files(params, dataset, root) as files:
        count = len(files)
        images = [load_rgb(file) for file in files]
        full = _mean_seconds(lambda i: load_rgb(files[i]).resize((size, size)), count)
        extra = max(full - _mean_seconds(lambda i: load_rgb(files[i], size), count), 0.0)
        for kind in ("downscale", "blur", "jpeg"):
            share = getattr(degradations, kind)
            if share > 0:
                always = TrainDegradations(seed=degradations.seed, **{kind: 1.0})
                extra += share * _mean_seconds(lambda i, always=always: always(i, images[i]), count)
        return extra
