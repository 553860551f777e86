"""What a train stage leaves: the model folder, history.csv, its timing and the run's metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from visionlab import paths
from visionlab.atomic import atomic_dir, atomic_write_text
from visionlab.models import Classifier, save_checkpoint
from visionlab.models.base import count_trainable
from visionlab.runtime.experiment import ResolvedExperiment
from visionlab.tracking import RUN_RECORD, TrackedRun
from visionlab.training import distributed
from visionlab.training.loop import HISTORY_COLUMNS, FitResult


def run_summary(
    experiment: str,
    phases: list[FitResult],
    features_seconds: float,
    model: Classifier,
    device: torch.device,
    amp: bool,
    channels_last: bool,
    trained_on: str,
) -> tuple[dict, dict]:
    """What the run did: (summary, timing).

    The summary goes into summary.json and the checkpoint, and holds only what identical runs
    reproduce bit for bit, so a forced retrain that lands on the same weights writes the same
    model.pt; wall-clock figures (timing) go to results/<experiment>/training.json, the history's
    seconds column and MLflow.
    """
    seconds = sum(result.seconds for result in phases)
    seen = sum(result.samples_seen for result in phases)
    summary = {
        "experiment": experiment,
        "epochs_run": sum(len(result.history) for result in phases),
        # A second phase starts from the first one's best, and must beat it.
        "best_epoch": phases[-1].best_epoch,
        "stopped_early": any(result.stopped_early for result in phases),
        "trainable_parameters": count_trainable(model),
        "device": device.type,
        "amp": amp,
        "channels_last": channels_last,
        "trained_on": trained_on,
        "processes": distributed.world().size,  # data-parallel ranks: the global batch is this x batch_size
    }
    timing = {
        "resumed_after_epoch": sum(result.resumed_from for result in phases),
        "train_seconds": round(seconds, 3),
        "train_images_per_second": round(seen / seconds, 2) if seconds else 0.0,
        # The compute that produced the model: the frozen base's features, then training.
        "featurize_seconds": round(features_seconds, 3),
        "compute_seconds": round(features_seconds + seconds, 3),
    }
    return summary, timing


def save_outputs(
    run: TrackedRun,
    experiment: ResolvedExperiment,
    model: Classifier,
    phases: list[FitResult],
    features_seconds: float,
    summary: dict,
    timing: dict,
) -> Path:
    """The model folder (weights, summary, run record) and history.csv, also logged to the run."""
    history = pd.DataFrame([row for result in phases for row in result.history], columns=HISTORY_COLUMNS)
    seconds = sum(result.seconds for result in phases)
    e = experiment
    out = e.model_dir
    with atomic_dir(out) as scratch:
        checkpoint = scratch / "model.pt"
        save_checkpoint(checkpoint, model, e.spec, e.classes, e.image_size, e.grayscale, summary=summary)
        (scratch / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        run.record(scratch / RUN_RECORD)
    history_path = paths.results_dir(e.name) / "history.csv"
    atomic_write_text(history_path, history.to_csv(index=False))
    timing_path = paths.training_timing_file(e.name)
    atomic_write_text(timing_path, json.dumps(timing, indent=2) + "\n")
    run.log_metrics(
        {
            "best_epoch": summary["best_epoch"],
            "train_seconds": seconds,
            "featurize_seconds": features_seconds,
            "compute_seconds": features_seconds + seconds,
            "train_images_per_second": timing["train_images_per_second"],
        }
    )
    run.log_artifact(history_path, "training")
    run.log_artifact(timing_path, "training")
    run.log_artifact(out / "summary.json", "training")
    run.log_artifact(out / "model.pt", "model")
    return out
