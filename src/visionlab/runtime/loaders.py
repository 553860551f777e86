"""Datasets and loaders over manifests: images decoded, resized and normalised on the fly."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from visionlab import paths
from visionlab.data.images import load_rgb
from visionlab.data.manifest import read_manifest
from visionlab.params import Params
from visionlab.params.common import decoding_workers
from visionlab.runtime.degrade import TrainDegradations
from visionlab.runtime.preprocess import Normaliser, image_pixels, to_chw

log = logging.getLogger(__name__)


class ImageDataset(Dataset):
    """``(tensor, label index)`` pairs from image paths, normalised with the model's mean/std.

    ``grayscale`` turns every image grey first; ``channels`` is what the model takes (a grey image
    is repeated over three channels for a model that wants three).
    """

    def __init__(
        self,
        image_paths: Sequence[str],
        labels: Sequence[int],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        grayscale: bool = False,
        channels: int = 3,
        degrade: TrainDegradations | None = None,
    ):
        self.paths = list(image_paths)
        self.labels = list(labels)
        self.size = image_size
        self.grayscale = grayscale
        self.channels = channels
        self.normalise = Normaliser(mean, std, channels)
        self.degrade = degrade if degrade is not None and degrade.active else None

        self.pixels: torch.Tensor | None = None  # decoded uint8 images, once preload() ran
        self.epoch = 0  # which draw of redrawn degradations (set_epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> Image.Image:
        """The RGB image at the model's input size (evaluate's degraded copies override this);
        with ``degrade``, degraded at full size first, as this index always is."""
        if self.degrade is None:
            return load_rgb(Path(self.paths[index]), self.size)
        image = self.degrade(index, load_rgb(Path(self.paths[index])), self.epoch)
        return image.resize((self.size, self.size), Image.Resampling.BILINEAR)

    @property
    def redraws(self) -> bool:
        """Its images change from epoch to epoch (degradations drawn afresh): none to preload."""
        return self.degrade is not None and self.degrade.redraw

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose draw ``read`` degrades by (workers copy it with the set each epoch)."""
        self.epoch = epoch

    def decode(self, index: int) -> torch.Tensor:
        """The image as a uint8 (1 or 3)xHxW tensor at the model's input size."""
        return to_chw(image_pixels(self.read(index), self.grayscale or self.channels == 1))

    def preload_bytes(self) -> int:
        if self.redraws:
            return 0
        return len(self) * (1 if self.grayscale or self.channels == 1 else 3) * self.size * self.size

    def preload(self, threads: int | None = None) -> None:
        """Decode every image once into memory, so epochs after the first cost no JPEG decoding.

        Training re-reads the same files every epoch; on a CPU the decoding would otherwise take
        a core away from the model (benchmarks/training_throughput.py measures the difference).
        """
        if self.pixels is not None or not self.paths or self.redraws:
            return
        with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
            self.pixels = torch.stack(list(pool.map(self.decode, range(len(self)))))

    def load(self, index: int) -> torch.Tensor:
        return self.normalise(self.pixels[index] if self.pixels is not None else self.decode(index))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.load(index), self.labels[index]


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``: each image is seen by exactly one process.

    For validation, unlike DistributedSampler, which pads the shards to equal length with
    repeated images that would count twice in the all-reduced metrics.
    """

    def __init__(self, length: int, rank: int, world_size: int):
        self.indices = range(rank, length, world_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    workers: int | str,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """Batches of ``dataset``; with ``world_size`` > 1, of this rank's shard only.

    A shuffled shard comes from a DistributedSampler (equal lengths, so every rank takes the same
    number of DDP steps; call its ``set_epoch`` each epoch), an ordered one from ShardSampler.
    """
    generator = torch.Generator().manual_seed(seed)
    sampler: Sampler[int] | None = None
    if world_size > 1:
        sampler = (
            DistributedSampler(dataset, world_size, rank, shuffle=True, seed=seed)
            if shuffle
            else ShardSampler(len(dataset), rank, world_size)
        )
    # No persistent workers: each new iterator draws the workers' base seed from ``generator``
    # before shuffling, and a persistent one skips that draw from the second epoch on. Training
    # would then shuffle differently with workers than without (preloaded or streamed images,
    # any num_workers) and a resumed run differently from an uninterrupted one.
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=decoding_workers(workers),
        generator=generator,
    )


def read_splits(dataset: str, augmented: bool) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Rows of each split of a prepared data set; train from its augmented copies with ``augmented``."""
    prepared, classes = read_manifest(paths.prepared_dir(dataset))
    splits = {
        name: prepared[prepared.split == name].reset_index(drop=True) for name in ("train", "val", "test")
    }
    if augmented:
        splits["train"], _ = read_manifest(paths.augmented_dir(dataset))
    return splits, classes


def split_rows(params: Params, experiment: str) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Rows of each split for an experiment: train from the augmented set when the model asks."""
    dataset = params.experiment(experiment).dataset
    augmented = params.model_of(experiment).augmented
    splits, classes = read_splits(dataset, augmented)
    if augmented:
        written = params.dataset(dataset).image_size or params.augment.image_size
        needed = params.image_size_of(experiment)
        if written < needed:
            # Upscaled copies are blurrier than the originals the model is tested on.
            log.warning(
                "%s: trains on augmented copies written at %d px, upscaled to its %d px input; "
                "set augment.image_size to at least %d",
                experiment,
                written,
                needed,
                needed,
            )
    return splits, classes


def image_dataset(
    rows: pd.DataFrame,
    classes: list[str],
    image_size: int,
    model,
    grayscale: bool = False,
    degrade: TrainDegradations | None = None,
) -> ImageDataset:
    index = {name: i for i, name in enumerate(classes)}
    return ImageDataset(
        rows.path.tolist(),
        [index[label] for label in rows.label],
        image_size,
        model.mean,
        model.std,
        grayscale,
        model.in_channels,
        degrade,
    )
