"""The explain stage: Grad-CAM for a few test images per class, correct and misclassified."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from visionlab import paths
from visionlab.atomic import atomic_dir
from visionlab.data.images import load_rgb
from visionlab.errors import MissingArtifactError
from visionlab.explanations.gradcam import colour, grad_cam, overlay, target_layer
from visionlab.models import load_checkpoint
from visionlab.params import Params
from visionlab.tracking import open_run
from visionlab.training.data import image_dataset
from visionlab.training.train_stage import RUN_RECORD

log = logging.getLogger(__name__)


def choose_images(predictions: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """Per true class, the most confident correct and the most confident wrong predictions."""
    ranked = predictions.sort_values(["confidence", "path"], ascending=[False, True])
    picked = ranked.groupby(["label", "correct"], sort=True).head(per_class)
    return picked.sort_values(["label", "correct", "confidence"], ascending=[True, False, False])


def _grid(records: list[dict], folder: Path, path: Path) -> None:
    rows = len(records)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False)
    for axis_row, record in zip(axes, records, strict=True):
        for ax, key, title in zip(
            axis_row, ("image", "heatmap", "overlay"), ("input", "Grad-CAM", "overlay"), strict=True
        ):
            ax.imshow(Image.open(folder / record[key]))
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        axis_row[0].set_ylabel(record["label"])
        axis_row[0].set_title(
            f"true {record['label']} / pred {record['predicted']} ({record['confidence']:.2f})",
            fontsize=8,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def explain_experiment(params: Params, experiment: str) -> Path:
    exp = params.experiment(experiment)
    model, checkpoint = load_checkpoint(paths.model_dir(experiment) / "model.pt")
    classes, size = checkpoint["classes"], checkpoint["image_size"]
    predictions_path = paths.eval_dir(experiment) / "predictions.csv"
    if not predictions_path.is_file():
        raise MissingArtifactError(f"{predictions_path}: missing; run the evaluate stage first")
    predictions = pd.read_csv(
        predictions_path, dtype={"path": str, "label": str, "predicted": str}, keep_default_na=False
    )
    chosen = choose_images(predictions, params.explain.images_per_class)
    layer_name, layer = target_layer(model, params.explain.target_layer)
    index = {name: i for i, name in enumerate(classes)}
    dataset = image_dataset(chosen, classes, size, model, checkpoint.get("grayscale", False))

    out = paths.explain_dir(experiment)
    records: list[dict] = []
    with atomic_dir(out) as scratch:
        for position, row in enumerate(chosen.itertuples()):
            verdict = "correct" if row.correct else "misclassified"
            stem = f"{row.label}/{verdict}-{position:03d}-{Path(row.path).stem}"
            (scratch / row.label).mkdir(exist_ok=True)
            heat = grad_cam(model, layer, dataset.load(position), index[row.predicted])
            rgb = np.asarray(load_rgb(Path(row.path), size))
            files = {
                "image": f"{stem}-input.png",
                "heatmap": f"{stem}-gradcam.png",
                "overlay": f"{stem}-overlay.png",
            }
            Image.fromarray(rgb).save(scratch / files["image"])
            Image.fromarray(colour(heat)).save(scratch / files["heatmap"])
            Image.fromarray(overlay(rgb, heat, params.explain.alpha)).save(scratch / files["overlay"])
            records.append(
                {
                    "source": row.path,
                    "label": row.label,
                    "predicted": row.predicted,
                    "confidence": float(row.confidence),
                    "correct": bool(row.correct),
                    "explained_class": row.predicted,
                    **files,
                }
            )
        if records:
            _grid(records, scratch, scratch / "gradcam_grid.png")
        (scratch / "index.json").write_text(
            json.dumps({"method": "gradcam", "layer": layer_name, "images": records}, indent=2) + "\n"
        )
    run = open_run(paths.model_dir(experiment) / RUN_RECORD, exp.dataset, experiment)
    try:
        run.log_artifact(out, "explanations/gradcam")
        run.set_tags({"visionlab.gradcam_layer": layer_name})
        run.finish(True)
    except BaseException:
        run.finish(False)
        raise
    log.info("%s: Grad-CAM for %d images on layer %s", experiment, len(records), layer_name)
    return out
