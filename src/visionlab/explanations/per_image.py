"""Explanations of single test images: every registered per-image method (``methods.py``) per class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from visionlab.errors import VisionlabError
from visionlab.explanations.context import ExplainContext, slug
from visionlab.explanations.methods import ImageInputs, registered
from visionlab.runtime.preprocess import as_rgb


def explain_image(
    ctx: ExplainContext, layer: Any, row: Any, position: int, extra: str | None
) -> dict[str, Any]:
    """Every per-image explanation of one test image, for each class worth explaining."""
    verdict = "correct" if row.correct else "misclassified"
    stem = f"{slug(row.label)}/{verdict}-{position:03d}-{slug(Path(row.path).stem)}"
    pixels = ctx.pixels(row.path)
    rgb = as_rgb(pixels)
    tensor = ctx.tensor(pixels)
    wanted = (
        [row.predicted] + ([row.label] if row.label != row.predicted else []) + ([extra] if extra else [])
    )
    explanations = []
    for name in dict.fromkeys(w for w in wanted if w in ctx.index):
        inputs = ImageInputs(ctx.model, layer, tensor, rgb, ctx.index[name], ctx.settings.alpha)
        base = f"{stem}-{slug(name)}"
        entry: dict[str, Any] = {
            "class": name,
            "probability": float(inputs.maps().probabilities[inputs.class_index]),
        }
        for method in registered():
            pictures = method.compute(inputs)
            for picture in method.pictures:
                entry[picture.key] = ctx.save(pictures[picture.key], f"{base}{picture.suffix}")
        explanations.append(entry)
    if not explanations:
        raise VisionlabError(
            f"predictions.csv: {row.path} is predicted as {row.predicted!r}, a class the checkpoint does not "
            f"have ({', '.join(ctx.classes)}); rerun the evaluate stage"
        )
    first = explanations[0]
    return {
        "source": row.path,
        "label": row.label,
        "predicted": row.predicted,
        "confidence": float(row.confidence),
        "correct": bool(row.correct),
        "explained_class": first["class"],
        "image": ctx.save(pixels, f"{stem}-input.png"),
        "heatmap": first["gradcam"],
        "overlay": first["gradcam_overlay"],
        "explanations": explanations,
    }


def gradcam_grid(records: list[dict], folder: Path, path: Path) -> None:
    """One row per image: input and the predicted class's Grad-CAM, Grad-CAM++, guided Grad-CAM."""
    columns = (("image", "input"), ("gradcam_overlay", "Grad-CAM"), ("gradcam_pp_overlay", "Grad-CAM++"))
    columns += (("guided_gradcam", "guided Grad-CAM"),)
    fig, axes = plt.subplots(len(records), len(columns), figsize=(10, 2.6 * len(records)), squeeze=False)
    for axis_row, record in zip(axes, records, strict=True):
        first = record["explanations"][0]
        for ax, (key, title) in zip(axis_row, columns, strict=True):
            file = record[key] if key == "image" else first[key]
            with Image.open(folder / file) as picture:
                ax.imshow(np.asarray(picture), cmap="gray")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        axis_row[0].set_title(
            f"true {record['label']} / pred {record['predicted']} ({record['confidence']:.2f})", fontsize=8
        )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
