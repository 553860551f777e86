"""Classification report and confusion matrix from predicted probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix


def per_class_report(labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, then macro and weighted averages."""
    report = classification_report(
        labels,
        predicted,
        labels=list(range(len(classes))),
        target_names=classes,
        output_dict=True,
        zero_division=0,
    )
    rows = [
        {"class": name, **{k: report[name][k] for k in ("precision", "recall", "f1-score", "support")}}
        for name in [*classes, "macro avg", "weighted avg"]
    ]
    frame = pd.DataFrame(rows).rename(columns={"f1-score": "f1"})
    frame["support"] = frame["support"].astype(int)
    return frame


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Counts (rows: true class, columns: predicted) and the row-normalised matrix."""
    counts = confusion_matrix(labels, predicted, labels=list(range(len(classes))))
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros_like(counts, dtype=float), where=totals > 0)
    return counts, normalised


def report_markdown(frame: pd.DataFrame, title: str) -> str:
    lines = [f"# {title}", "", "| class | precision | recall | f1 | support |", "|---|---:|---:|---:|---:|"]
    for row in frame.itertuples():
        lines.append(f"| {row[1]} | {row.precision:.4f} | {row.recall:.4f} | {row.f1:.4f} | {row.support} |")
    return "\n".join(lines) + "\n"
