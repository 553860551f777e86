"""Read what the pipeline left on disk for every experiment into records and pandas frames.

Everything is read defensively: an experiment whose stages have not run yet is a record with
``metrics=None`` ("not run yet"), and a half-written or older-format file degrades one cell of the
report, not the report.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from visionlab import paths
from visionlab.evaluation.answers import PREDICTIONS, VAL_PREDICTIONS, read_answers
from visionlab.evaluation.intervals import accuracy_interval
from visionlab.params import DEGRADATION, Params
from visionlab.reporting.published import PublishedFigure, load_published
from visionlab.tracking import RUN_RECORD

log = logging.getLogger(__name__)


@dataclass
class Explanations:
    folder: Path
    gallery: Path | None  # the explain stage's index.html, else its grid image
    thumbnails: list[Path] = field(default_factory=list)


@dataclass
class ExperimentRecord:
    name: str
    dataset: str
    model: str  # the models.<name> key
    arch: str
    recipe: str
    metrics: dict[str, Any] | None = None  # results/<exp>/metrics.json; None = not run yet
    problem: str | None = None  # why the results could not be read
    run_id: str | None = None
    history: pd.DataFrame | None = None
    per_class: pd.DataFrame | None = None  # class, precision, recall, f1[, support]
    answers: pd.Series | None = None  # test image path -> right or wrong (predictions.csv)
    val_answers: pd.Series | None = None  # validation's, from val_predictions.csv (evaluate writes it)
    confusion_png: Path | None = None
    curves_png: Path | None = None
    explanations: Explanations | None = None
    published: PublishedFigure | None = None
    trained_on_record: str | None = None  # the train stage's summary.json; None before it recorded one

    @property
    def has_run(self) -> bool:
        return self.metrics is not None

    @property
    def featurize_seconds(self) -> float:
        """The featurize stage's seconds; NaN when it cached nothing (a trained base)."""
        value = self.metric("training", "featurize_seconds")
        return value if value > 0 else math.nan

    @property
    def trained_on(self) -> str:
        """``images`` or ``cache``: what the net's training epochs read. A head on featurize's cache runs
        hundreds of times faster than a net on decoded images, so the rate means nothing without it.
        The train stage records it; runs from before it did are judged by whether featurize ran,
        which misreads a base trained on images whose featurize cached nothing."""
        if not self.has_run:
            return ""
        if self.trained_on_record:
            return "images" if self.trained_on_record == "images" else "cache"
        return "images" if math.isnan(self.featurize_seconds) else "cache"

    @property
    def compute_seconds(self) -> float:
        """What the model cost: the frozen base's features (if any) + training."""
        features = self.featurize_seconds
        return self.metric("training", "seconds") + (0.0 if math.isnan(features) else features)

    def metric(self, split: str, name: str) -> float:
        value = (self.metrics or {}).get(split, {}).get(name)
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan

    def worst_degraded(self, split: str = "val") -> float:
        """The lowest accuracy over the split's degraded copies evaluate scored (evaluate.robustness,
        e.g. ``val_jpeg_30``); NaN when none were."""
        scored = [
            self.metric(key, "accuracy")
            for key in self.metrics or {}
            if key.startswith(f"{split}_") and DEGRADATION.match(key.removeprefix(f"{split}_"))
        ]
        return min((value for value in scored if math.isfinite(value)), default=math.nan)

    def interval(self, split: str = "test") -> tuple[float, float]:
        """The 95% Wilson interval of the split's accuracy: as evaluate wrote it, else from the
        accuracy and the image count (results written before evaluate recorded intervals)."""
        low, high = self.metric(split, "accuracy_ci_low"), self.metric(split, "accuracy_ci_high")
        if math.isfinite(low) and math.isfinite(high):
            return low, high
        return accuracy_interval(self.metric(split, "accuracy"), self.metric(split, "images"))


@dataclass
class DatasetRecord:
    name: str
    experiments: list[ExperimentRecord]
    cleaning: dict[str, Any] | None = None  # data/prepared/<dataset>/report.json
    published: dict[str, PublishedFigure] = field(default_factory=dict)

    @property
    def run(self) -> list[ExperimentRecord]:
        return [e for e in self.experiments if e.has_run]

    @property
    def not_run(self) -> list[ExperimentRecord]:
        return [e for e in self.experiments if not e.has_run]


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); left out of the report", path, exc)
        return None
    return data if isinstance(data, dict) else None


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); left out of the report", path, exc)
        return None


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def read_explanations(folder: Path, limit: int) -> Explanations | None:
    """Thumbnails and gallery of one experiment's explain stage output.

    The index may list ``thumbnails`` (overlay file names) explicitly; older ones only have
    ``images[*].overlay``. Names that do not exist on disk are dropped, so a half-updated folder
    still renders.
    """
    index = _read_json(folder / "index.json")
    if index is None:
        return None
    names = index.get("thumbnails")
    if not isinstance(names, list):
        images = index.get("images")
        images = images if isinstance(images, list) else []
        names = [record.get("overlay") for record in images if isinstance(record, dict)]
    thumbnails: list[Path] = []
    for name in names:
        if isinstance(name, str) and name and (folder / name).is_file():
            thumbnails.append(folder / name)
        if len(thumbnails) >= limit:
            break
    gallery = _existing(folder / "index.html") or _existing(folder / "gradcam_grid.png")
    return Explanations(folder, gallery, thumbnails)


def _per_class(root: Path, experiment: str) -> pd.DataFrame | None:
    # The evaluate stage's classification report carries support and the averages; results/
    # holds the per-class part only (for `dvc plots`): use it when the report is gone.
    frame = _read_csv(root / paths.eval_dir(experiment) / "classification_report.csv")
    if frame is None:
        frame = _read_csv(root / paths.results_dir(experiment) / "per_class.csv")
    if frame is None or not {"class", "precision", "recall", "f1"} <= set(frame.columns):
        return None
    frame["class"] = frame["class"].astype(str)
    return frame


def read_experiment(
    root: Path,
    params: Params,
    name: str,
    published: dict[str, dict[str, PublishedFigure]],
    thumbnails: int,
) -> ExperimentRecord:
    exp = params.experiment(name)
    arch = params.model_of(name).arch
    record = ExperimentRecord(
        name, exp.dataset, exp.model, arch, exp.recipe, published=published.get(exp.dataset, {}).get(arch)
    )
    metrics_path = root / paths.results_dir(name) / "metrics.json"
    record.metrics = _read_json(metrics_path)
    if record.metrics is None and metrics_path.is_file():
        record.problem = f"{metrics_path} is unreadable"
    run = _read_json(root / paths.model_dir(name) / RUN_RECORD)
    record.run_id = str(run["run_id"]) if run and run.get("run_id") else None
    summary = _read_json(root / paths.model_dir(name) / "summary.json")
    if summary and isinstance(summary.get("trained_on"), str):
        record.trained_on_record = summary["trained_on"]
    record.history = _read_csv(root / paths.results_dir(name) / "history.csv")
    record.per_class = _per_class(root, name)
    evaluation = root / paths.eval_dir(name)
    record.confusion_png = _existing(evaluation / "confusion.png")
    record.curves_png = _existing(evaluation / "learning_curves.png")
    record.answers = read_answers(evaluation / PREDICTIONS)
    record.val_answers = read_answers(evaluation / VAL_PREDICTIONS)
    record.explanations = read_explanations(root / paths.explain_dir(name), thumbnails)
    return record


def read_datasets(params: Params, root: Path = Path(".")) -> list[DatasetRecord]:
    """Every data set that has experiments, in params.yaml order, with every experiment's outputs."""
    published = load_published(root / params.report.published)
    by_dataset: dict[str, list[ExperimentRecord]] = {}
    for name in params.experiments:
        record = read_experiment(root, params, name, published, params.report.thumbnails)
        by_dataset.setdefault(record.dataset, []).append(record)
    return [
        DatasetRecord(
            dataset,
            by_dataset[dataset],
            _read_json(root / paths.prepared_dir(dataset) / "report.json"),
            published.get(dataset, {}),
        )
        for dataset in params.datasets
        if dataset in by_dataset
    ]
