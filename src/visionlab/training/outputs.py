"""What a train stage leaves: the model folder, history.csv, its timing and the run's metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TrainedModel:
    """A finished fit: the model with its best weights, each phase's result and how it ran."""

    model: Classifier
    phases: list[FitResult]
    device: torch.device
    amp: bool
    channels_last: bool
    trained_on: str  # images, cached features, or cached activations (training/inputs.py)
    features_seconds: float  # featurize's compute for this model, 0 when it trained on images

    @property
    def seconds(self) -> float:
        return sum(result.seconds for result in self.phases)

    @property
    def epochs_run(self) -> int:
        return sum(len(result.history) for result in self.phases)

    @property
    def best_epoch(self) -> int:
        return self.phases[-1].best_epoch  # a second phase starts from the first one's best, and must beat it

    @property
    def best_phase(self) -> str:
        """The phase whose weights the model holds: where its best epoch was trained."""
        for result in self.phases:
            if any(row["epoch"] == self.best_epoch for row in result.history):
                return result.history[0]["phase"]
        return ""

    def unimproved(self) -> str | None:
        """Why the last phase bought nothing, when it trained epochs but never beat the earlier best."""
        last = self.phases[-1]
        if len(self.phases) < 2 or not last.history or self.best_phase == last.history[0]["phase"]:
            return None
        epochs = [row["epoch"] for row in last.history]
        losses = [row["val_loss"] for row in last.history]
        return (
            f"its {last.history[0]['phase']} phase (epochs {epochs[0]}-{epochs[-1]}, best val loss "
            f"{min(losses):.4f}) never beat the {self.best_phase} phase's {last.best_loss:.4f} at epoch "
            f"{self.best_epoch}: the model keeps the {self.best_phase} phase's weights"
        )

    def history(self) -> pd.DataFrame:
        rows = [row for result in self.phases for row in result.history]
        return pd.DataFrame(rows, columns=HISTORY_COLUMNS)

    def summary(self, experiment: str) -> dict:
        """summary.json and the checkpoint's summary.

        It holds only what identical runs reproduce bit for bit, so a forced retrain that lands on
        the same weights writes the same model.pt; wall-clock figures are in :meth:`timing`
        (results/<experiment>/training.json, the history's seconds column and MLflow).
        """
        return {
            "experiment": experiment,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "best_phase": self.best_phase,
            "stopped_early": any(result.stopped_early for result in self.phases),
            "trainable_parameters": count_trainable(self.model),
            "device": self.device.type,
            "amp": self.amp,
            "channels_last": self.channels_last,
            "trained_on": self.trained_on,
            # data-parallel ranks: the global batch is this x batch_size
            "processes": distributed.world().size,
        }

    def timing(self) -> dict:
        seconds = self.seconds
        seen = sum(result.samples_seen for result in self.phases)
        return {
            "resumed_after_epoch": sum(result.resumed_from for result in self.phases),
            "train_seconds": round(seconds, 3),
            "train_images_per_second": round(seen / seconds, 2) if seconds else 0.0,
            # The compute that produced the model: the frozen base's features, then training.
            "featurize_seconds": round(self.features_seconds, 3),
            "compute_seconds": round(self.features_seconds + seconds, 3),
        }


def save_outputs(run: TrackedRun, experiment: ResolvedExperiment, trained: TrainedModel) -> Path:
    """The model folder (weights, summary, run record) and history.csv, also logged to the run."""
    e = experiment
    summary, timing = trained.summary(e.name), trained.timing()
    seconds, features_seconds = trained.seconds, trained.features_seconds
    out = e.model_dir
    with atomic_dir(out) as scratch:
        checkpoint = scratch / "model.pt"
        model = trained.model
        save_checkpoint(checkpoint, model, e.spec, e.classes, e.image_size, e.grayscale, summary=summary)
        (scratch / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        run.record(scratch / RUN_RECORD)
    history_path = paths.results_dir(e.name) / "history.csv"
    atomic_write_text(history_path, trained.history().to_csv(index=False))
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
