"""The report's tables as plain cells (text + "is best" flags), shared by the HTML and Markdown
writers so both always show the same numbers and the same bold cells."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from visionlab.evaluation.intervals import verdict
from visionlab.reporting.collect import DatasetRecord
from visionlab.reporting.frames import per_class_frame

Kind = Literal["text", "percent", "loss", "seconds", "rate", "delta", "fraction", "interval"]


@dataclass(frozen=True)
class Column:
    key: str  # column of the comparison frame
    label: str
    kind: Kind = "text"
    better: Literal["max", "min"] | None = None  # which end is bolded


COMPARISON = [
    Column("experiment", "experiment"),
    Column("arch", "model"),
    Column("train_loss", "train loss", "loss", "min"),
    Column("train_accuracy", "train acc.", "percent", "max"),
    Column("val_loss", "val. loss", "loss", "min"),
    Column("val_accuracy", "val. acc.", "percent", "max"),
    Column("test_loss", "test loss", "loss", "min"),
    Column("test_accuracy", "test acc.", "percent", "max"),
    Column("test_interval", "test 95% interval", "interval"),
    Column("test_macro_f1", "macro F1", "fraction", "max"),
    # evaluate.robustness: the lowest of the degraded copies (what @robust is chosen on, on val).
    Column("val_worst_degraded", "worst degraded val.", "percent", "max"),
    Column("test_worst_degraded", "worst degraded test", "percent", "max"),
    Column("featurize_seconds", "features", "seconds"),
    Column("train_seconds", "training", "seconds"),
    Column("compute_seconds", "compute time", "seconds", "min"),
    # Not bolded: a head on cached features and a net on images are not one measure.
    Column("images_per_second", "train images/s", "rate"),
    Column("trained_on", "on"),
    Column("published_accuracy", "published", "percent"),
    Column("delta_accuracy", "vs published", "delta"),
    Column("vs_published", "beyond chance?"),
]


@dataclass(frozen=True)
class Cell:
    text: str
    best: bool = False
    numeric: bool = False


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    numeric: list[bool]  # per column: right-aligned


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def format_interval(low: object, high: object) -> str:
    """``92.79–97.28%``; a dash when either end is unknown."""
    if not (_finite(low) and _finite(high)):
        return "–"
    return f"{100 * float(low):.2f}–{100 * float(high):.2f}%"  # type: ignore[arg-type]


def format_value(value: object, kind: Kind) -> str:
    if kind == "text":
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    if not _finite(value):
        return "–"
    number = float(value)  # type: ignore[arg-type]
    if kind == "percent":
        return f"{100 * number:.2f}%"
    if kind == "delta":
        return f"{100 * number:+.2f} pp"
    if kind == "loss":
        return f"{number:.4f}"
    if kind == "fraction":
        return f"{number:.4f}"
    if kind == "seconds":
        if number >= 3600:
            return f"{number / 3600:.1f} h"
        if number >= 120:
            return f"{number / 60:.1f} min"
        return f"{number:.1f} s"
    return f"{number:.1f}"  # rate


def best_values(frame: pd.DataFrame, columns: list[Column]) -> dict[str, float]:
    """Per column, the best value, only where at least two different values compete: bolding a
    lone row, or a column where every row ties, says nothing."""
    best: dict[str, float] = {}
    for column in columns:
        if column.better is None or column.key not in frame:
            continue
        values = pd.to_numeric(frame[column.key], errors="coerce").dropna()
        if values.nunique() < 2:
            continue
        best[column.key] = float(values.max() if column.better == "max" else values.min())
    return best


def _is_best(value: object, target: float | None) -> bool:
    return target is not None and _finite(value) and math.isclose(float(value), target, rel_tol=1e-9)  # type: ignore[arg-type]


def comparison_table(frame: pd.DataFrame) -> Table:
    """Rows of one data set's experiments that have results; best value per column flagged."""
    done = frame[frame.status == "done"]
    best = best_values(done, COMPARISON)
    rows = []
    for _, row in done.iterrows():
        cells = []
        for column in COMPARISON:
            if column.kind == "interval":
                interval = format_interval(row["test_accuracy_ci_low"], row["test_accuracy_ci_high"])
                cells.append(Cell(interval, numeric=True))
                continue
            value = row[column.key]
            text = format_value(value, column.kind)
            if column.key == "arch" and row["model"] != row["arch"]:
                text = f"{row['arch']} ({row['model']})"
            cells.append(Cell(text, _is_best(value, best.get(column.key)), column.kind != "text"))
        rows.append(cells)
    return Table([c.label for c in COMPARISON], rows, [c.kind != "text" for c in COMPARISON])


def validation_score(experiment) -> tuple[float, float]:
    """What choosing on validation ranks by: accuracy, then the lower loss."""
    accuracy, loss = experiment.metric("val", "accuracy"), experiment.metric("val", "loss")
    return (
        accuracy if math.isfinite(accuracy) else -math.inf,
        -loss if math.isfinite(loss) else -math.inf,
    )


def published_table(dataset: DatasetRecord) -> Table:
    """The study's published figures, each beside our experiment of the same arch chosen on
    validation (never on test), with its 95% interval and whether the study's figure lies outside it."""
    headers = [
        "published model",
        "arch",
        "published test acc.",
        "ours (chosen on val.)",
        "95% interval",
        "difference",
        "beyond chance?",
    ]
    rows = []
    for arch, figure in dataset.published.items():
        ours = [e for e in dataset.run if e.arch == arch and math.isfinite(e.metric("test", "accuracy"))]
        top = max(sorted(ours, key=lambda e: e.name), key=validation_score, default=None)
        if top is None:
            run_of_arch = [e.name for e in dataset.experiments if e.arch == arch]
            mine = "not run yet" if run_of_arch else "no experiment"
            interval = delta = said = "–"
        else:
            accuracy = top.metric("test", "accuracy")
            low, high = top.interval("test")
            mine = f"{format_value(accuracy, 'percent')} ({top.name})"
            interval = format_interval(low, high)
            delta = format_value(accuracy - figure.test_accuracy, "delta")
            said = verdict(low, high, figure.test_accuracy)
        rows.append(
            [
                Cell(figure.model),
                Cell(arch),
                Cell(format_value(figure.test_accuracy, "percent"), numeric=True),
                Cell(mine, numeric=True),
                Cell(interval, numeric=True),
                Cell(delta, numeric=True),
                Cell(said),
            ]
        )
    return Table(headers, rows, [False, False, True, True, True, True, False])


def per_class_table(dataset: DatasetRecord) -> Table | None:
    """Class rows; precision, recall and F1 per experiment; the best F1 of each class flagged."""
    frame = per_class_frame(dataset)
    if frame.empty:
        return None
    experiments = list(dict.fromkeys(frame.experiment))
    classes = list(dict.fromkeys(frame["class"]))
    indexed = frame.set_index(["class", "experiment"])
    headers = ["class"]
    for name in experiments:
        headers += [f"{name} P", f"{name} R", f"{name} F1"]
    rows = []
    for name in classes:
        f1s = [float(indexed.loc[(name, e), "f1"]) for e in experiments if (name, e) in indexed.index]
        best_f1 = max(f1s) if len(set(f1s)) >= 2 else None
        cells = [Cell(name)]
        for e in experiments:
            if (name, e) not in indexed.index:
                cells += [Cell("–", numeric=True)] * 3
                continue
            values = indexed.loc[(name, e)]
            cells += [
                Cell(format_value(float(values["precision"]), "fraction"), numeric=True),
                Cell(format_value(float(values["recall"]), "fraction"), numeric=True),
                Cell(
                    format_value(float(values["f1"]), "fraction"),
                    _is_best(float(values["f1"]), best_f1),
                    numeric=True,
                ),
            ]
        rows.append(cells)
    return Table(headers, rows, [False] + [True] * (len(headers) - 1))


def cleaning_table(cleaning: dict) -> Table | None:
    """Per class: images found, kept, and per split, from the prepare stage's report."""
    before, after = cleaning.get("before"), cleaning.get("after")
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    splits = cleaning.get("splits") if isinstance(cleaning.get("splits"), dict) else {}
    split_names = list(splits)
    headers = ["class", "found", "kept", *split_names]
    rows = []
    for name in before:
        cells = [Cell(str(name)), Cell(str(before.get(name, "–")), numeric=True)]
        cells.append(Cell(str(after.get(name, "–")), numeric=True))
        cells += [Cell(str(splits[s].get(name, "–")), numeric=True) for s in split_names]
        rows.append(cells)
    total = [Cell("total"), Cell(str(sum(v for v in before.values() if isinstance(v, int))), numeric=True)]
    total.append(Cell(str(cleaning.get("images_kept", sum(after.values()))), numeric=True))
    totals = cleaning.get("split_totals") if isinstance(cleaning.get("split_totals"), dict) else {}
    total += [Cell(str(totals.get(s, "–")), numeric=True) for s in split_names]
    rows.append(total)
    return Table(headers, rows, [False] + [True] * (len(headers) - 1))


def dropped_table(cleaning: dict) -> Table | None:
    reasons = cleaning.get("dropped_by_reason")
    if not isinstance(reasons, dict):
        return None
    rows = [[Cell(str(reason)), Cell(str(count), numeric=True)] for reason, count in reasons.items()]
    if not rows:
        rows = [[Cell("none"), Cell("0", numeric=True)]]
    return Table(["dropped because", "files"], rows, [False, True])
