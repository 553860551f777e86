"""Images for the report, as ``data:`` URIs: the HTML file must open anywhere, offline, alone."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image, UnidentifiedImageError

from visionlab.evaluation.plots import learning_curves_figure
from visionlab.reporting.collect import DatasetRecord

log = logging.getLogger(__name__)

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}


def data_uri(payload: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def file_uri(path: Path) -> str | None:
    """The file as a data URI, unchanged; None when it cannot be read."""
    try:
        payload = Path(path).read_bytes()
    except OSError as exc:
        log.warning("%s: unreadable (%s); left out of the report", path, exc)
        return None
    return data_uri(payload, _MIME.get(Path(path).suffix.lower(), "application/octet-stream"))


def thumbnail_uri(path: Path, side: int) -> str | None:
    """A small PNG copy: a row of full-size overlays would make the report tens of MB."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((side, side))
            buffer = io.BytesIO()
            image.save(buffer, "PNG", optimize=True)
    except (OSError, UnidentifiedImageError) as exc:
        log.warning("%s: not an image (%s); left out of the report", path, exc)
        return None
    return data_uri(buffer.getvalue())


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return data_uri(buffer.getvalue())


def curves_uri(history: pd.DataFrame, title: str) -> str | None:
    """One experiment's loss and accuracy per epoch, for when its evaluate plot is missing."""
    if history is None or "epoch" not in history:
        return None
    fig = learning_curves_figure(history, title, figsize=(8, 3.2))
    return _png(fig)


def overview_uri(dataset: DatasetRecord) -> str | None:
    """Validation accuracy and loss per epoch of every experiment of a data set, on one figure."""
    runs = [e for e in dataset.run if e.history is not None and "epoch" in e.history]
    if not runs:
        return None
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for e in runs:
        if "val_accuracy" in e.history:
            acc_ax.plot(e.history.epoch, e.history.val_accuracy, "-o", markersize=3, label=e.name)
        if "val_loss" in e.history:
            loss_ax.plot(e.history.epoch, e.history.val_loss, "-o", markersize=3, label=e.name)
    acc_ax.set(title="validation accuracy", xlabel="epoch", ylim=(0, 1.02))
    loss_ax.set(title="validation loss", xlabel="epoch")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{dataset.name}: every experiment")
    fig.tight_layout()
    return _png(fig)
