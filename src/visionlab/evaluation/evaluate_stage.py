"""The evaluate stage: loss and accuracy per split, the classification report, confusion
matrices, learning curves and the misclassified test images with their probabilities."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from visionlab import paths
from visionlab.atomic import atomic_dir, atomic_write_text
from visionlab.data.manifest import read_manifest
from visionlab.data.split import SPLITS
from visionlab.errors import MissingArtifactError, VisionlabError
from visionlab.evaluation.classification_report import confusion, per_class_report, report_markdown
from visionlab.evaluation.intervals import wilson
from visionlab.evaluation.plots import plot_confusion, plot_learning_curves
from visionlab.evaluation.robustness import DegradedImages, degradation, hflip_tta
from visionlab.models import Checkpoint, load_checkpoint
from visionlab.params import ModelParams, Params
from visionlab.runtime.base_mode import base_mode
from visionlab.runtime.device import select_device, use_amp, use_amp_on_cached_top
from visionlab.runtime.feature_cache import CACHED_SPLITS, feature_file, load_features
from visionlab.runtime.folding import fold_batch_norms
from visionlab.runtime.inference import gather_outputs
from visionlab.runtime.loaders import ImageDataset, image_dataset, loader
from visionlab.tracking import RUN_RECORD, finishing, open_run
from visionlab.tracking.model_logging import log_classifier

log = logging.getLogger(__name__)

VARIANT_SPLITS = ("val", "test")  # evaluate.tta and .robustness score both: choose on val, report test


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


def _scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
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


def _prepared_rows(dataset: str, classes: list[str], experiment: str) -> pd.DataFrame:
    prepared, manifest_classes = read_manifest(paths.prepared_dir(dataset))
    if manifest_classes != classes:
        raise VisionlabError(
            f"{experiment}: the model was trained on classes {classes} but the prepared data "
            f"has {manifest_classes}; rerun the train stage"
        )
    return prepared


def _score_splits(
    params: Params,
    experiment: str,
    trained: Checkpoint,
    prepared: pd.DataFrame,
    amp: bool,
    amp_top: bool,
) -> tuple[dict[str, dict[str, float]], pd.DataFrame | None, dict[str, ImageDataset]]:
    """Scores per split, the test predictions (None when test is empty) and each split's images.

    ``amp``: autocast for the whole model; ``amp_top``: for a fine-tuned top on cached
    activations (as in phase two of training).
    """
    model, classes, size, grayscale = trained.model, trained.classes, trained.image_size, trained.grayscale
    device = _device_of(model)
    metrics: dict[str, dict[str, float]] = {}
    test_frame, images = None, {}
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
        metrics[split] = _scores(logits, labels)
        images[split] = dataset
        if split == "test":
            test_frame = predictions_frame(rows, torch.softmax(logits, 1).numpy(), classes)
    return metrics, test_frame, images


def _scoring_copy(model: torch.nn.Module, amp: bool) -> torch.nn.Module:
    """A forward-only copy of the trained model to score with: batch norms folded into their
    convolutions, channels-last under bfloat16 (``runtime/folding.py``); the model itself, as
    trained, is what MLflow logs."""
    scorer = copy.deepcopy(model).eval()
    fold_batch_norms(scorer)
    if amp:
        scorer.to(memory_format=torch.channels_last)
    return scorer


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _score_variants(
    params: Params, model, images: dict[str, ImageDataset], amp: bool
) -> dict[str, dict[str, float]]:
    """Test-time augmentation and degraded copies of validation and test, each as its own metrics
    (``val_tta_hflip``, ``test_tta_hflip``, ``val_jpeg_30``, ``test_jpeg_30``, ...).

    The plain test figures stay comparable to the studies'; these come beside them. The validation
    figures are what a choice is made on (TTA in the headline or not, a robust recipe or not); the
    test figures only report the choice.
    """
    device = _device_of(model)
    metrics = {}
    for split in VARIANT_SPLITS:
        if split not in images:
            continue
        for name in params.evaluate.tta:
            batches = _batches(images[split], params)
            desc = f"{split} TTA {name}"
            flipped = hflip_tta(model)
            logits, labels = gather_outputs(flipped, batches, device, desc=desc, amp=amp, channels_last=amp)
            metrics[f"{split}_tta_{name}"] = _scores(logits, labels)
        for name in params.evaluate.robustness:
            degraded = _batches(DegradedImages(images[split], degradation(name)), params)
            desc = f"{split} {name}"
            logits, labels = gather_outputs(model, degraded, device, desc=desc, amp=amp, channels_last=amp)
            metrics[f"{split}_{name}"] = _scores(logits, labels)
    return metrics


def _training_figures(experiment: str, summary: dict, history: pd.DataFrame) -> dict[str, float]:
    """What the model cost: the train stage's timing file, else the checkpoint's summary."""
    timing_path = paths.training_timing_file(experiment)
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else summary
    return {
        "seconds": timing.get("train_seconds", float("nan")),
        "featurize_seconds": timing.get("featurize_seconds", 0.0),
        "compute_seconds": timing.get("compute_seconds", timing.get("train_seconds", float("nan"))),
        "images_per_second": timing.get("train_images_per_second", float("nan")),
        "epochs": summary.get("epochs_run", len(history)),
        "best_epoch": summary.get("best_epoch", 0),
    }


def _read_history(experiment: str) -> pd.DataFrame:
    history_path = paths.results_dir(experiment) / "history.csv"
    if not history_path.is_file():
        raise MissingArtifactError(f"{history_path}: missing; rerun the train stage")
    return pd.read_csv(history_path)


class SplitReport(NamedTuple):
    """The test split's per-class report and confusion matrix (counts, row-normalised)."""

    by_class: pd.DataFrame
    counts: np.ndarray
    normalised: np.ndarray


def _test_report(test_frame: pd.DataFrame, classes: list[str]) -> SplitReport:
    index = {name: i for i, name in enumerate(classes)}
    truth = test_frame.label.map(index).to_numpy()
    guess = test_frame.predicted.map(index).to_numpy()
    return SplitReport(per_class_report(truth, guess, classes), *confusion(truth, guess, classes))


def _write_outputs(
    experiment: str,
    classes: list[str],
    test_frame: pd.DataFrame,
    test: SplitReport,
    history: pd.DataFrame,
    metrics: dict,
) -> Path:
    """The evaluation folder (reports, confusion plots, predictions) and the DVC metrics files."""
    report, counts, normalised = test
    out = paths.eval_dir(experiment)
    with atomic_dir(out) as scratch:
        report.to_csv(scratch / "classification_report.csv", index=False)
        (scratch / "classification_report.md").write_text(report_markdown(report, f"{experiment}: test set"))
        pd.DataFrame(counts, index=classes, columns=classes).to_csv(scratch / "confusion_matrix.csv")
        plot_confusion(
            counts, classes, f"{experiment}: test confusion (counts)", scratch / "confusion.png", "d"
        )
        plot_confusion(
            normalised,
            classes,
            f"{experiment}: test confusion (row-normalised)",
            scratch / "confusion_normalized.png",
            ".2f",
        )
        plot_learning_curves(history, experiment, scratch / "learning_curves.png")
        test_frame.to_csv(scratch / "predictions.csv", index=False)
        test_frame[~test_frame.correct].to_csv(scratch / "misclassified.csv", index=False)
    results = paths.results_dir(experiment)
    atomic_write_text(results / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(
        results / "confusion.csv",
        test_frame[["path", "label", "predicted"]].rename(columns={"label": "actual"}).to_csv(index=False),
    )
    atomic_write_text(
        results / "per_class.csv",
        report[report["class"].isin(classes)][["class", "precision", "recall", "f1"]].to_csv(index=False),
    )
    return out


def _log_run(
    experiment: str, dataset: str, trained: Checkpoint, test_frame: pd.DataFrame, metrics: dict, out: Path
) -> None:
    """The metrics, the evaluation folder and the model (as an MLflow model) on the experiment's run."""
    model, classes, size = trained.model, trained.classes, trained.image_size
    record = paths.model_dir(experiment) / RUN_RECORD
    with finishing(open_run(record, dataset, experiment)) as run:
        flat = {
            f"{'final_' if split in ('train', 'val') else ''}{split}_{name}": value
            for split, values in metrics.items()
            for name, value in values.items()
            if name != "images" and split != "training"
        }
        run.log_metrics(flat)
        run.log_artifact(out, "evaluation")
        run.log_artifact(paths.results_dir(experiment) / "metrics.json", "evaluation")
        # The model as an MLflow model (signature + input example: one real normalised test image),
        # so the report stage can register each data set's best in the model registry.
        example = image_dataset(test_frame.head(1), classes, size, model, trained.grayscale)
        log_classifier(
            run,
            model,
            example.load(0).unsqueeze(0).numpy(),
            classes,
            {
                "experiment": experiment,
                "dataset": dataset,
                "image_size": size,
                "mean": [float(v) for v in model.mean],
                "std": [float(v) for v in model.std],
            },
        )


def evaluate_experiment(params: Params, experiment: str) -> Path:
    exp = params.experiment(experiment)
    trained = load_checkpoint(paths.model_dir(experiment) / "model.pt")
    model, classes = trained.model, trained.classes
    prepared = _prepared_rows(exp.dataset, classes, experiment)
    recipe = params.recipe_of(experiment)
    device = select_device(recipe.device)
    amp = use_amp(device, recipe.amp)  # as trained: train.amp off means float32 here too
    amp_top = use_amp_on_cached_top(device, recipe.amp)
    model.to(device)
    scoring = dataclasses.replace(trained, model=_scoring_copy(model, amp))
    metrics, test_frame, images = _score_splits(params, experiment, scoring, prepared, amp, amp_top)
    if test_frame is None:
        raise VisionlabError(f"{exp.dataset}: the test split is empty (prepare.split.test)")
    metrics.update(_score_variants(params, scoring.model, images, amp))

    test = _test_report(test_frame, classes)
    by_class = test.by_class.set_index("class")
    metrics["test"]["macro_f1"] = float(by_class.loc["macro avg", "f1"])
    metrics["test"]["weighted_f1"] = float(by_class.loc["weighted avg", "f1"])
    history = _read_history(experiment)
    metrics["training"] = _training_figures(experiment, trained.summary, history)

    out = _write_outputs(experiment, classes, test_frame, test, history, metrics)
    _log_run(experiment, exp.dataset, trained, test_frame, metrics, out)
    log.info("%s: test accuracy %.4f", experiment, metrics["test"]["accuracy"])
    return out
