"""What a train stage fits: the net and its train/val data (images, or the featurize stage's caches)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, TensorDataset

from visionlab.models import Classifier
from visionlab.params import ModelParams
from visionlab.params.common import decoding_workers
from visionlab.runtime.base_mode import base_mode
from visionlab.runtime.experiment import ResolvedExperiment
from visionlab.runtime.feature_cache import feature_file, load_features
from visionlab.runtime.loaders import ImageDataset, image_dataset

log = logging.getLogger(__name__)


@dataclass
class TrainingInputs:
    net: torch.nn.Module
    train_set: Dataset
    val_set: Dataset
    workers: int
    on_features: bool
    # base: finetune with an activation cache: phase two's net (top blocks + head) and its data
    phase_two: TrainingInputs | None = None


def training_inputs(model: Classifier, experiment: ResolvedExperiment) -> TrainingInputs:
    settings, name = experiment.recipe, experiment.name
    mode = base_mode(experiment.spec)
    nets = mode.cached_nets(model)
    cached = feature_file(experiment.features_dir, "train").is_file()
    if nets and (cached or mode.needs_cache):
        # The featurize stage ran the frozen part once: each phase trains on what it cached.
        train_cache, val_cache = load_features(name, "train"), load_features(name, "val")
        phases = [
            TrainingInputs(
                net,
                TensorDataset(train_cache[key], train_cache["labels"]),
                TensorDataset(val_cache[key], val_cache["labels"]),
                0,  # tensors in memory: worker processes would only add overhead
                True,
            )
            for key, net in nets
        ]
        first, *later = phases
        # base: finetune: phase two trains the top blocks and the head on the cut's activations.
        first.phase_two = later[0] if later else None
        return first
    train_set, val_set = image_sets(model, experiment)
    needed = train_set.preload_bytes() + val_set.preload_bytes()
    if 0 < needed <= settings.preload_max_gb * 1e9:
        started = time.perf_counter()
        train_set.preload()
        val_set.preload()
        log.info(
            "decoded %d images into %.2f GB in %.1fs",
            len(val_set) + (0 if train_set.redraws else len(train_set)),  # a redrawn set is not preloaded
            needed / 1e9,
            time.perf_counter() - started,
        )
        if train_set.redraws:  # its degradations change every epoch: decoded every epoch
            log.info("decoding %d training images every epoch: train_degradations.redraw", len(train_set))
            return TrainingInputs(model, train_set, val_set, decoding_workers(settings.num_workers), False)
        # In memory, worker processes would only copy the tensors around.
        return TrainingInputs(model, train_set, val_set, 0, False)
    log.info(
        "decoding %d images from disk every epoch: %.2f GB would not fit train.preload_max_gb (%g)",
        len(train_set) + len(val_set),
        needed / 1e9,
        settings.preload_max_gb,
    )
    return TrainingInputs(model, train_set, val_set, decoding_workers(settings.num_workers), False)


def image_sets(model: Classifier, experiment: ResolvedExperiment) -> tuple[ImageDataset, ImageDataset]:
    """The training and validation images as ``model`` takes them, the training share degraded."""
    splits = experiment.splits
    shape = (experiment.classes, experiment.image_size, model, experiment.grayscale)
    train_set = image_dataset(splits["train"], *shape, experiment.train_degradations)
    return train_set, image_dataset(splits["val"], *shape)


def trained_on(inputs: TrainingInputs, spec: ModelParams) -> str:
    if inputs.phase_two is not None:
        return f"cached features, then cached activations at {spec.unfreeze_from}"
    return "cached features" if inputs.on_features else "images"


def labels_of(dataset: Dataset) -> list[int]:
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].tolist()
    return list(dataset.labels)
