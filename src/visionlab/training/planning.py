"""`visionlab plan`: how long the full `dvc repro` would take on this machine, per study.

The estimate multiplies image counts by epochs and divides by throughput measured here and now:
each distinct network of params.yaml (architecture, input side, channels) runs two synthetic
batches forward after a warm-up one. A training step (forward + backward + update) is taken as
TRAIN_COST forward passes, the usual ratio, rather than timed: the probe stays short on a CPU
(backward passes of VGG-sized nets take seconds each). Timing needs the graph, not the weights, so networks
are built without ImageNet weights (same cost, works offline). Image counts come from
``data/prepared/<dataset>/manifest.csv`` when that data set is prepared, else from the size of the
published archive split by the params' fractions. Epochs are the recipe's (an upper bound: early
stopping often ends sooner). Not counted: downloads (network-bound), prepare and augment (minutes
on every core), explanations and the report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from visionlab import paths
from visionlab.params import Params

# Images in each published archive (what the studies used), for data sets not yet prepared.
# max_per_class and the class list cap these where a card sets them.
ARCHIVE_IMAGES = {
    "flower_photos.tgz": 3670,
    "flowers-recognition.zip": 4242,
    "kagglecatsanddogs_5340.zip": 25000,
    "cifar-10-python.tar.gz": 60000,
    "101_ObjectCategories.tar.gz": 484,  # the five classes the Caltech study keeps
}
PROBE_BATCH = 4
TRAIN_COST = 3.0  # a training step costs about three forward passes (backward = two)


@dataclass(frozen=True)
class Counts:
    train: int
    val: int
    test: int
    measured: bool  # from a prepared manifest, not from the archive's size

    @property
    def total(self) -> int:
        return self.train + self.val + self.test


@dataclass(frozen=True)
class Estimate:
    experiment: str
    dataset: str
    seconds: float


def image_counts(params: Params, dataset: str, root: Path) -> Counts | None:
    """Images per split of ``dataset``: prepared manifest, else the archive's size; None if unknown."""
    manifest = root / paths.prepared_dir(dataset) / "manifest.csv"
    if manifest.is_file():
        import pandas as pd

        splits = pd.read_csv(manifest, usecols=["split"])["split"].value_counts()
        train, val, test = (int(splits.get(split, 0)) for split in ("train", "val", "test"))
        return Counts(train, val, test, True)
    card = params.dataset(dataset)
    total = ARCHIVE_IMAGES.get(card.source.archive_name)
    if total is None:
        return None
    per_class = card.max_per_class or params.prepare.max_per_class
    if per_class and card.classes:
        total = min(total, per_class * len(card.classes))
    split = card.split or params.prepare.split
    return Counts(round(total * split.train), round(total * split.val), round(total * split.test), False)


def _rates(params: Params, experiment: str, device, cache: dict) -> tuple[float, float]:
    """Images per second through this experiment's network: forward only, and training."""
    import torch

    from visionlab.models import build_model

    spec = params.model_of(experiment)
    grayscale = params.dataset_of(experiment).grayscale
    size = params.image_size_of(experiment)
    key = (spec.arch, size, grayscale)
    if key in cache:
        return cache[key]
    timing = spec.model_copy(update={"weights": "none", "base": "trainable", "unfreeze_from": None})
    model = build_model(timing, 5, load_weights=False, grayscale=grayscale).to(device)
    batch = torch.randn(PROBE_BATCH, model.in_channels, size, size, device=device)

    def forward() -> None:
        with torch.no_grad():
            model(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()

    model.eval()
    forward()  # warm-up: allocation, cudnn autotuning
    repeats = 2
    started = time.perf_counter()
    for _ in range(repeats):
        forward()
    forward_rate = repeats * PROBE_BATCH / (time.perf_counter() - started)
    cache[key] = (forward_rate, forward_rate / TRAIN_COST)
    return cache[key]


def estimate(params: Params, experiment: str, counts: Counts, device, cache: dict) -> Estimate:
    """Seconds of featurize + train + evaluate for one experiment (see the module docstring)."""
    spec = params.model_of(experiment)
    recipe = params.recipe_of(experiment)
    forward, train = _rates(params, experiment, device, cache)
    n_train = counts.train * (params.augment.factor if spec.augmented else 1)
    seen = n_train + counts.val
    evaluate = counts.total / forward
    if spec.base == "frozen":  # features once; the head on cached features costs next to nothing
        seconds = seen / forward + evaluate
    else:
        head = min(recipe.head_epochs, recipe.epochs) if spec.base == "finetune" else 0
        seconds = head * seen / forward  # phase one: the base only runs forward
        seconds += (recipe.epochs - head) * (n_train / train + counts.val / forward) + evaluate
    return Estimate(experiment, params.experiment(experiment).dataset, seconds)


def unavailable(params: Params, dataset: str) -> str | None:
    """Why ``dataset`` cannot be downloaded on this machine as configured, or None."""
    from visionlab.data import kaggle_source

    source = params.dataset(dataset).source
    if source.url is None and not params.download.mirror and not kaggle_source.credentials_present():
        return f"no Kaggle credentials: {kaggle_source.HOW_TO}"
    return None


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
