"""The evaluate stage: loss and accuracy per split, the classification report, confusion
matrices, learning curves and the misclassified test images with their probabilities."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from visionlab import paths
from visionlab.atomic import atomic_dir, atomic_write_text
from visionlab.errors import MissingArtifactError, VisionlabError
from visionlab.evaluation.answers import PREDICTIONS, VAL_PREDICTIONS
from visionlab.evaluation.classification_report import confusion, per_class_report, report_markdown
from visionlab.evaluation.plots import plot_confusion, plot_learning_curves
from visionlab.evaluation.scoring import (
    prepared_rows,
    score_splits,
    score_variants,
    scoring_copy,
    with_copies,
)
from visionlab.models import Checkpoint, load_checkpoint
from visionlab.params import Params
from visionlab.runtime.device import select_device, use_amp, use_amp_on_cached_top
from visionlab.runtime.loaders import image_dataset
from visionlab.tracking import RUN_RECORD, finishing, open_run
from visionlab.tracking.model_logging import log_classifier

log = logging.getLogger(__name__)


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
    val_frame: pd.DataFrame | None,
) -> Path:
    """The evaluation folder (reports, confusion plots, test and validation predictions) and the
    DVC metrics files."""
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
        test_frame.to_csv(scratch / PREDICTIONS, index=False)
        test_frame[~test_frame.correct].to_csv(scratch / "misclassified.csv", index=False)
        if val_frame is not None:  # to test a choice made on validation against the runner-up there
            val_frame.to_csv(scratch / VAL_PREDICTIONS, index=False)
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
    prepared = prepared_rows(exp.dataset, classes, experiment)
    recipe = params.recipe_of(experiment)
    device = select_device(recipe.device)
    amp = use_amp(device, recipe.amp)  # as trained: train.amp off means float32 here too
    amp_top = use_amp_on_cached_top(device, recipe.amp)
    model.to(device)
    scoring = dataclasses.replace(trained, model=scoring_copy(model, amp))
    metrics, frames, images = score_splits(params, experiment, scoring, prepared, amp, amp_top)
    test_frame = frames.get("test")
    if test_frame is None:
        raise VisionlabError(f"{exp.dataset}: the test split is empty (prepare.split.test)")
    variants, answers = score_variants(params, scoring.model, images, amp)
    metrics.update(variants)
    test_frame = with_copies(test_frame, answers, classes)

    test = _test_report(test_frame, classes)
    by_class = test.by_class.set_index("class")
    metrics["test"]["macro_f1"] = float(by_class.loc["macro avg", "f1"])
    metrics["test"]["weighted_f1"] = float(by_class.loc["weighted avg", "f1"])
    history = _read_history(experiment)
    metrics["training"] = _training_figures(experiment, trained.summary, history)

    out = _write_outputs(experiment, classes, test_frame, test, history, metrics, frames.get("val"))
    _log_run(experiment, exp.dataset, trained, test_frame, metrics, out)
    log.info("%s: test accuracy %.4f", experiment, metrics["test"]["accuracy"])
    return out
