"""Figures the studies showed: confusion matrices and learning curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_confusion(matrix: np.ndarray, classes: list[str], title: str, path: Path, fmt: str) -> None:
    size = max(4.0, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size and matrix.max() > 0 else 0
    for (row, col), value in np.ndenumerate(matrix):
        ax.text(
            col,
            row,
            format(value, fmt),
            ha="center",
            va="center",
            color="white" if value > threshold else "black",
            fontsize=8,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def learning_curves_figure(history: pd.DataFrame, title: str, figsize: tuple[float, float] = (10, 4)):
    """Loss and accuracy per epoch, train and validation side by side (columns that exist)."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=figsize)
    for split, style in (("train", "-o"), ("val", "-s")):
        for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
            column = f"{split}_{metric}"
            if column in history:
                ax.plot(history.epoch, history[column], style, label=split, markersize=3)
    loss_ax.set(title="loss", xlabel="epoch")
    acc_ax.set(title="accuracy", xlabel="epoch", ylim=(0, 1.02))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_learning_curves(history: pd.DataFrame, title: str, path: Path) -> None:
    fig = learning_curves_figure(history, title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
