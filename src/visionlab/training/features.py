"""The featurize stage: run a frozen backbone once over the training and validation images.

With a frozen base, every epoch would push the same images through the same backbone; caching its
output as a DVC stage output turns head training (and re-tuning it) into seconds of work. For a
trainable base there is nothing to cache and the stage records just that.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from visionlab import paths
from visionlab.atomic import atomic_dir
from visionlab.models import Classifier, build_model
from visionlab.params import Params, TrainParams
from visionlab.training.data import image_dataset, loader, split_rows
from visionlab.training.feature_cache import CACHED_SPLITS, feature_file, info_file
from visionlab.training.inference import gather_outputs
from visionlab.training.runtime import select_device, use_amp

log = logging.getLogger(__name__)


def compute_features(
    model: Classifier,
    rows,
    classes: list[str],
    image_size: int,
    params: Params,
    desc: str,
    recipe: TrainParams,
    grayscale: bool = False,
) -> dict:
    device = select_device(recipe.device)
    model.to(device).eval()
    batches = loader(
        image_dataset(rows, classes, image_size, model, grayscale),
        params.evaluate.batch_size,
        shuffle=False,
        workers=params.evaluate.num_workers,
    )
    amp = use_amp(device, recipe.amp)
    features, labels = gather_outputs(model.forward_features, batches, device, desc=desc, amp=amp)
    return {"features": features, "labels": labels, "paths": rows.path.tolist()}


def featurize_experiment(params: Params, experiment: str) -> Path:
    spec = params.model_of(experiment)
    out = paths.features_dir(experiment)
    with atomic_dir(out) as scratch:
        info: dict = {"experiment": experiment, "frozen": spec.base == "frozen"}
        if spec.base == "frozen":
            started = time.perf_counter()  # the whole stage's work: loading the backbone included
            splits, classes = split_rows(params, experiment)
            grayscale = params.dataset_of(experiment).grayscale
            model = build_model(spec, len(classes), grayscale=grayscale)
            size = params.image_size_of(experiment)
            recipe = params.recipe_of(experiment)
            for split in CACHED_SPLITS:
                cached = compute_features(
                    model,
                    splits[split],
                    classes,
                    size,
                    params,
                    f"features {split}",
                    recipe,
                    grayscale,
                )
                torch.save(cached, feature_file(scratch, split))
                info[f"{split}_images"] = len(cached["labels"])
            info.update(
                feature_dim=int(cached["features"].shape[1]),
                image_size=size,
                classes=classes,
                seconds=round(time.perf_counter() - started, 2),
            )
        else:
            info["note"] = f"the base is {spec.base}: nothing to cache"
        info_file(scratch).write_text(json.dumps(info, indent=2) + "\n")
    return out
