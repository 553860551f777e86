"""How evaluate scores a trained model: each split once (on featurize's cache where it holds exactly
these images), then test-time augmentation and degraded copies of validation and test.

Scores carry the counts behind each accuracy and its 95% Wilson interval; the test split always
runs through the whole model, so nothing the train stage read was computed from test images.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from visionlab import paths
from visionlab.data.manifest import read_manifest
from visionlab.data.split import SPLITS
from visionlab.errors import VisionlabError
from visionlab.evaluation.intervals import wilson
from visionlab.evaluation.robustness import DegradedImages, degradation, hflip_tta
from visionlab.models import Checkpoint
from visionlab.params import ModelParams, Params
from visionlab.runtime.base_mode import base_mode
from visionlab.runtime.feature_cache import CACHED_SPLITS, feature_file, load_features
from visionlab.runtime.folding import fold_batch_norms
from visionlab.runtime.inference import gather_outputs
from visionlab.runtime.loaders import ImageDataset, image_dataset, loader

VARIANT_SPLITS = ("val", "test")  # evaluate.tta and .robustness score both: choose on val, report test
ANSWERED_SPLITS = ("val", "test")  # whose per-image answers evaluate writes (evaluation/answers.py)


def predictions_frame(rows: pd.DataFrame, probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """One row per image: true and predicted class, confidence and the full probability row."""
    predicted = probs.argmax(1)
    frame = pd.DataFrame(
        {
            "path": rows.path.to_numpy(),
            "label": rows.label.to_numpy(),
            "predicted": [classes[i] for i in predicted],
            "confidence": probs.max(1),
        }
    )
    frame["correct"] = frame.label == frame.predicted
    for index, name in enumerate(classes):
        frame[f"p_{name}"] = probs[:, index]
    return frame


def scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Loss and accuracy, with the count behind the accuracy and its 95% Wilson interval."""
    correct = int((logits.argmax(1) == labels).sum().item())
    low, high = wilson(correct, len(labels))
    return {
        "loss": F.cross_entropy(logits, labels).item(),
        "accuracy": correct / len(labels) if len(labels) else float("nan"),
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "correct": correct,
        "images": len(labels),
    }


def _batches(dataset, params: Params):
    return loader(dataset, params.evaluate.batch_size, shuffle=False, workers=params.evaluate.num_workers)


def _cached_inputs(
    experiment: str, split: str, rows: pd.DataFrame, model, spec: ModelParams
) -> tuple[torch.nn.Module, torch.Tensor, str] | None:
    """What featurize cached of exactly these images, in this order, and the part of the model
    that runs on it: (that part, its inputs, what they are), or None to run the whole model.

    A frozen base's pooled features feed the head. A fine-tuned base's activations entering
    ``unfreeze_from`` feed the top blocks and head, as in phase two: the blocks below the cut never
    trained, so they are what featurize ran. Only train and val are cached: featurize prepares
    training inputs, and the test split runs through the whole model here, so nothing the train
    stage reads was computed from test images.
    """
    nets = base_mode(spec).cached_nets(model)
    if not nets:
        return None
    if split not in CACHED_SPLITS or not feature_file(paths.features_dir(experiment), split).is_file():
        return None
    cache = load_features(experiment, split)
    key, net = nets[-1]  # the most of the model that runs on a cache: all that fine-tuning trains
    if key not in cache:
        return None  # activation_cache: off, so the top was trained on whole images
    where = {path: i for i, path in enumerate(cache["paths"])}
    if not all(path in where for path in rows.path):
        return None  # an augmented model's cache holds the copies, not these originals
    return net, cache[key][torch.tensor([where[path] for path in rows.path], dtype=torch.long)], key


def prepared_rows(dataset: str, classes: list[str], experiment: str) -> pd.DataFrame:
    prepared, manifest_classes = read_manifest(paths.prepared_dir(dataset))
    if manifest_classes != classes:
        raise VisionlabError(
            f"{experiment}: the model was trained on classes {classes} but the prepared data "
            f"has {manifest_classes}; rerun the train stage"
        )
    return prepared


def score_splits(
    params: Params,
    experiment: str,
    trained: Checkpoint,
    prepared: pd.DataFrame,
    amp: bool,
    amp_top: bool,
) -> tuple[dict[str, dict[str, float]], dict[str, pd.DataFrame], dict[str, ImageDataset]]:
    """Scores per split, the per-image predictions of validation and test (those not empty) and
    each split's images. Validation's answers let a report test whether the row chosen on
    validation beat the runner-up there beyond chance, not only on test.

    ``amp``: autocast for the whole model; ``amp_top``: for a fine-tuned top on cached
    activations (as in phase two of training).
    """
    model, classes, size, grayscale = trained.model, trained.classes, trained.image_size, trained.grayscale
    device = device_of(model)
    metrics: dict[str, dict[str, float]] = {}
    frames: dict[str, pd.DataFrame] = {}
    images: dict[str, ImageDataset] = {}
    for split in SPLITS:
        rows = prepared[prepared.split == split].reset_index(drop=True)
        if rows.empty:
            continue
        dataset = image_dataset(rows, classes, size, model, grayscale)
        cached = _cached_inputs(experiment, split, rows, model, trained.spec)
        if cached is not None:
            # featurize already ran the frozen part on these images: only what trained runs here.
            net, inputs, what = cached
            labels = torch.tensor(dataset.labels)
            batches = loader(TensorDataset(inputs, labels), params.evaluate.batch_size, False, 0)
            desc = f"evaluate {split} (cached {what})"
            net_amp = amp if what == "features" else amp_top
            logits, labels = gather_outputs(
                net, batches, device, desc=desc, amp=net_amp, channels_last=net_amp
            )
        else:
            batches = _batches(dataset, params)
            desc = f"evaluate {split}"
            logits, labels = gather_outputs(model, batches, device, desc=desc, amp=amp, channels_last=amp)
        metrics[split] = scores(logits, labels)
        images[split] = dataset
        if split in ANSWERED_SPLITS:
            frames[split] = predictions_frame(rows, torch.softmax(logits, 1).numpy(), classes)
    return metrics, frames, images


def scoring_copy(model: torch.nn.Module, amp: bool) -> torch.nn.Module:
    """A forward-only copy of the trained model to score with: batch norms folded into their
    convolutions, channels-last under bfloat16 (``runtime/folding.py``); the model itself, as
    trained, is what MLflow logs."""
    scorer = copy.deepcopy(model).eval()
    fold_batch_norms(scorer)
    if amp:
        scorer.to(memory_format=torch.channels_last)
    return scorer


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def score_variants(
    params: Params, model, images: dict[str, ImageDataset], amp: bool
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Test-time augmentation and degraded copies of validation and test, each as its own metrics
    (``val_tta_hflip``, ``test_tta_hflip``, ``val_jpeg_30``, ``test_jpeg_30``, ...), and the class
    index each test copy predicts per image, by copy (``tta_hflip``, ``jpeg_30``, ...), in the
    test images' order: what a paired test between two models on a degraded copy needs.

    The plain test figures stay comparable to the studies'; these come beside them. The validation
    figures are what a choice is made on (TTA in the headline or not, a robust recipe or not); the
    test figures only report the choice.
    """
    device = device_of(model)
    metrics, answers = {}, {}
    for split in VARIANT_SPLITS:
        if split not in images:
            continue
        copies = [(f"tta_{name}", hflip_tta(model), images[split]) for name in params.evaluate.tta]
        copies += [
            (name, model, DegradedImages(images[split], degradation(name)))
            for name in params.evaluate.robustness
        ]
        for name, net, dataset in copies:
            batches = _batches(dataset, params)
            desc = f"{split} {name}"
            logits, labels = gather_outputs(net, batches, device, desc=desc, amp=amp, channels_last=amp)
            metrics[f"{split}_{name}"] = scores(logits, labels)
            if split == "test":
                answers[name] = logits.argmax(1).numpy()
    return metrics, answers


def with_copies(test_frame: pd.DataFrame, answers: dict[str, np.ndarray], classes: list[str]) -> pd.DataFrame:
    """The test predictions with each copy's predicted class and whether it is right beside them
    (``predicted_jpeg_30``, ``correct_jpeg_30``, ...)."""
    frame = test_frame.copy()
    for name, predicted in answers.items():
        frame[f"predicted_{name}"] = [classes[i] for i in predicted]
        frame[f"correct_{name}"] = frame.label == frame[f"predicted_{name}"]
    return frame
