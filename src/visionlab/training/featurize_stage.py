"""The featurize stage: run a frozen backbone once over the training and validation images.

With a frozen base, every epoch would push the same images through the same backbone; caching its
output as a DVC stage output turns head training (and re-tuning it) into seconds of work. For a
trainable base there is nothing to cache and the stage records just that.

For a fine-tuned base (``base: finetune``) everything below ``unfreeze_from`` is frozen and in
eval mode, so the activations entering that block are a fixed function of each (offline
augmented) image: the stage stores them (``activations``, in ``model.activation_cache``
precision) with the pooled features computed from them (``features``). Phase one trains the head
on the features, phase two the top blocks and head on the activations: the same numbers as the
whole network gives, without running the frozen blocks every epoch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from visionlab import paths
from visionlab.atomic import atomic_dir, atomic_write_text
from visionlab.errors import MissingArtifactError
from visionlab.models import Classifier, build_model
from visionlab.params import ModelParams, Params, trace
from visionlab.params.resolved import BASE_KEYS
from visionlab.runtime.base_mode import BaseMode, FrozenPart, base_mode, mode_of
from visionlab.runtime.degrade import TrainDegradations
from visionlab.runtime.device import select_device, use_amp
from visionlab.runtime.feature_cache import CACHED_SPLITS, feature_file, info_file
from visionlab.runtime.folding import fold_batch_norms
from visionlab.runtime.inference import gather_outputs
from visionlab.runtime.loaders import image_dataset, loader, read_splits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureRun:
    """How the images go through the frozen part: input side, channels, precision, device."""

    image_size: int
    grayscale: bool
    amp: str  # train.amp: auto, bf16 or off
    device: str  # train.device: runtime, like the loader's batch size and workers
    degrade: TrainDegradations | None = None  # the train split's degradations, if its model has any


def compute_features(
    model: Classifier,
    rows,
    classes: list[str],
    run: FeatureRun,
    params: Params,
    desc: str,
    part: FrozenPart,
    dtype: torch.dtype = torch.float32,
) -> dict:
    """Pooled features of every image, or for a cut base (``part.upper``) the activations as well."""
    device = select_device(run.device)
    model.to(device).eval()
    batches = loader(
        image_dataset(rows, classes, run.image_size, model, run.grayscale, run.degrade),
        params.evaluate.batch_size,
        shuffle=False,
        workers=params.evaluate.num_workers,
    )
    amp = use_amp(device, run.amp)
    if amp:  # bfloat16 convolutions run far faster channels-last here (benchmarks/featurize_breakdown.py)
        model.to(memory_format=torch.channels_last)
    if part.upper is None:
        features, labels = gather_outputs(part.lower, batches, device, desc=desc, amp=amp, channels_last=amp)
        return {"features": features, "labels": labels, "paths": rows.path.tolist()}
    lower, upper = part.lower, part.upper
    activations, labels = gather_outputs(lower, batches, device, desc=desc, amp=amp, channels_last=amp)
    activations = activations.to(dtype)
    # Features from the stored activations, as phase two will see them.
    stored = loader(TensorDataset(activations), params.evaluate.batch_size, shuffle=False, workers=0)
    features, _ = gather_outputs(
        lambda a: upper(a.float()), _no_labels(stored), device, amp=amp, channels_last=amp
    )
    return {"features": features, "activations": activations, "labels": labels, "paths": rows.path.tolist()}


def _no_labels(batches):
    """A TensorDataset of one tensor yields 1-tuples; gather_outputs wants (inputs, targets)."""
    for (inputs,) in batches:
        yield inputs, torch.zeros(len(inputs), dtype=torch.long)


def read_feature_inputs(experiment: str) -> dict:
    path = paths.resolved_features(experiment)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MissingArtifactError(
            f"{path}: cannot read the featurize record ({exc}); run `dvc repro resolve` first"
        ) from None


def featurize_experiment(params: Params, experiment: str) -> Path:
    """Cache the frozen part's output for ``experiment``, from its resolved record alone."""
    record = read_feature_inputs(experiment)
    out = paths.features_dir(experiment)
    started = time.perf_counter()  # the whole stage's work: loading the backbone included
    cached = mode_of(record["base"]).caches
    with atomic_dir(out) as scratch:
        info: dict = {"experiment": experiment, "frozen": record["base"] == "frozen"}
        if not cached:  # its record holds nothing else: no model to build
            info["note"] = BaseMode.NOTHING_CACHED
        else:
            info.update(_cache_base(params, record, scratch))
        info_file(scratch).write_text(json.dumps(info, indent=2) + "\n")
    # The seconds go beside the cache, not in it: the same features must hash the same in DVC.
    seconds = round(time.perf_counter() - started, 2) if cached else None
    atomic_write_text(paths.featurize_timing_file(experiment), json.dumps({"seconds": seconds}) + "\n")
    return out


def _cache_base(params: Params, record: dict, scratch: Path) -> dict:
    """Features (frozen base) or activations at the cut (fine-tuned base) of the train and val images."""
    spec = ModelParams.model_validate({key: record[key] for key in BASE_KEYS} | {"head": record["head"]})
    trace.not_params(spec)  # built from the resolve stage's record, a file dep: not params.yaml
    mode = base_mode(spec)
    splits, classes = read_splits(record["dataset"], record["augmented"])
    model = build_model(spec, len(classes), grayscale=record["grayscale"])
    # This copy only ever runs forward: its batch norms fold into their convolutions (the same
    # outputs to float rounding, each batch faster); the train stage builds its own model.
    folded = fold_batch_norms(model.eval())
    part = mode.frozen_part(model)
    if part is None:
        return {"note": mode.nothing_cached()}
    info: dict = {}
    dtype = getattr(torch, spec.activation_cache) if part.upper is not None else torch.float32
    run = FeatureRun(record["image_size"], record["grayscale"], record["amp"], params.train.device)
    degrade = TrainDegradations.of(record.get("train_degradations"))  # train only: val stays clean
    for split in CACHED_SPLITS:
        desc = f"features {split}"
        split_run = dataclasses.replace(run, degrade=degrade if split == "train" else None)
        cached = compute_features(model, splits[split], classes, split_run, params, desc, part, dtype)
        torch.save(cached, feature_file(scratch, split))
        info[f"{split}_images"] = len(cached["labels"])
    if part.upper is not None:
        info.update(
            activations_at=spec.unfreeze_from,
            activation_shape=list(cached["activations"].shape[1:]),
            activation_dtype=spec.activation_cache,
            activation_bytes=sum(feature_file(scratch, name).stat().st_size for name in CACHED_SPLITS),
        )
    info.update(
        folded_batch_norms=folded,
        feature_dim=int(cached["features"].shape[1]),
        image_size=record["image_size"],
        classes=classes,
    )
    return info
