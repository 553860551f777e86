"""The report's tables as pandas frames, built from the records :mod:`collect` read: the comparison
of every experiment (comparison.csv), the learning curves of all of them (the top-level `dvc plots`)
and each data set's per-class scores."""

from __future__ import annotations

import math

import pandas as pd

from visionlab.evaluation.intervals import verdict
from visionlab.reporting.collect import DatasetRecord

HISTORY_FIELDS = ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]

COMPARISON_COLUMNS = [
    "dataset",
    "experiment",
    "model",
    "arch",
    "recipe",
    "status",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
    "test_accuracy_ci_low",
    "test_accuracy_ci_high",
    "test_images",
    "test_macro_f1",
    "val_worst_degraded",
    "test_worst_degraded",
    "train_seconds",
    "featurize_seconds",
    "compute_seconds",
    "images_per_second",
    "trained_on",
    "epochs",
    "published_model",
    "published_accuracy",
    "delta_accuracy",
    "vs_published",
    "mlflow_run_id",
]


def comparison_frame(datasets: list[DatasetRecord]) -> pd.DataFrame:
    """One row per experiment, run or not: the table the studies drew, plus the published figure."""
    rows = []
    for dataset in datasets:
        for e in dataset.experiments:
            published = e.published.test_accuracy if e.published else math.nan
            test_accuracy = e.metric("test", "accuracy")
            low, high = e.interval("test")
            rows.append(
                {
                    "dataset": dataset.name,
                    "experiment": e.name,
                    "model": e.model,
                    "arch": e.arch,
                    "recipe": e.recipe,
                    "status": "done" if e.has_run else (e.problem or "not run yet"),
                    "train_loss": e.metric("train", "loss"),
                    "train_accuracy": e.metric("train", "accuracy"),
                    "val_loss": e.metric("val", "loss"),
                    "val_accuracy": e.metric("val", "accuracy"),
                    "test_loss": e.metric("test", "loss"),
                    "test_accuracy": test_accuracy,
                    "test_accuracy_ci_low": low,
                    "test_accuracy_ci_high": high,
                    "test_images": e.metric("test", "images"),
                    "test_macro_f1": e.metric("test", "macro_f1"),
                    "val_worst_degraded": e.worst_degraded("val"),
                    "test_worst_degraded": e.worst_degraded("test"),
                    "train_seconds": e.metric("training", "seconds"),
                    "featurize_seconds": e.featurize_seconds,
                    "compute_seconds": e.compute_seconds,
                    "images_per_second": e.metric("training", "images_per_second"),
                    "trained_on": e.trained_on,  # which the rate counts: images or a cache
                    "epochs": e.metric("training", "epochs"),
                    "published_model": e.published.model if e.published else "",
                    "published_accuracy": published,
                    "delta_accuracy": test_accuracy - published,
                    # Whether the study's figure lies outside our 95% interval, not just the sign.
                    "vs_published": verdict(low, high, published) if e.published else "",
                    "mlflow_run_id": e.run_id or "",
                }
            )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def history_frame(datasets: list[DatasetRecord]) -> pd.DataFrame:
    """Every experiment's per-epoch curves in one long frame, with an ``experiment`` column: the
    data of the top-level `dvc plots` that draw every experiment's learning curves together."""
    columns = ["dataset", "experiment", "epoch", *HISTORY_FIELDS]
    frames = []
    for dataset in datasets:
        for e in dataset.experiments:
            if e.history is None or "epoch" not in e.history.columns:
                continue
            frame = e.history.reindex(columns=["epoch", *HISTORY_FIELDS]).copy()
            frame.insert(0, "experiment", e.name)
            frame.insert(0, "dataset", dataset.name)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def per_class_frame(dataset: DatasetRecord) -> pd.DataFrame:
    """Long frame: experiment, class, precision, recall, f1 (classes and averages, as reported)."""
    frames = []
    for e in dataset.run:
        if e.per_class is None:
            continue
        frame = e.per_class.reindex(columns=["class", "precision", "recall", "f1"]).copy()
        frame.insert(0, "experiment", e.name)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["experiment", "class", "precision", "recall", "f1"])
    return pd.concat(frames, ignore_index=True)
