"""The explain stage: every explanation of one experiment's trained model, in one folder.

``data/explain/<experiment>/`` holds, for a few test images per class (correct and misclassified):
Grad-CAM and Grad-CAM++ heatmaps and overlays, guided backpropagation and guided Grad-CAM, for the
predicted class, the true class when it differs, and ``explain.gradcam_class`` when set; the
feature maps of every conv layer for one image; the first layer's filters; the test-set patches
that drive each class (and each ``explain.patch_units`` unit) most; ``index.html``, a gallery of
all of it; and ``index.json``, the machine-readable list of every file. The folder is logged to
the experiment's MLflow run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from visionlab import paths
from visionlab.atomic import atomic_dir
from visionlab.errors import MissingArtifactError, VisionlabError
from visionlab.explanations.artifact_index import artifact_list, thumbnail_order
from visionlab.explanations.context import ExplainContext
from visionlab.explanations.gallery import write_gallery
from visionlab.explanations.gradcam import target_layer
from visionlab.explanations.methods import registered
from visionlab.explanations.model_views import feature_maps_section, filters_section, patches_section
from visionlab.explanations.per_image import explain_image, gradcam_grid
from visionlab.models import Checkpoint, load_checkpoint
from visionlab.params import ExplainParams, Params
from visionlab.runtime.device import select_device
from visionlab.tracking import RUN_RECORD, finishing, open_run

log = logging.getLogger(__name__)


def choose_images(predictions: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """Per true class, the most confident correct and the most confident wrong predictions."""
    ranked = predictions.sort_values(["confidence", "path"], ascending=[False, True])
    picked = ranked.groupby(["label", "correct"], sort=True).head(per_class)
    return picked.sort_values(["label", "correct", "confidence"], ascending=[True, False, False])


def read_predictions(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise MissingArtifactError(f"{path}: missing; run the evaluate stage first")
    predictions = pd.read_csv(
        path, dtype={"path": str, "label": str, "predicted": str}, keep_default_na=False
    )
    missing = {"path", "label", "predicted", "confidence", "correct"} - set(predictions.columns)
    if missing:
        raise MissingArtifactError(
            f"{path}: no column {', '.join(sorted(missing))}; rerun the evaluate stage"
        )
    predictions["correct"] = predictions["correct"].astype(str).str.lower().isin(("true", "1"))
    return predictions


def write_explanations(
    trained: Checkpoint,
    predictions: pd.DataFrame,
    settings: ExplainParams,
    folder: Path,
    experiment: str = "",
) -> dict[str, Any]:
    """Write every explanation into ``folder`` (index.json and index.html included); return the index."""
    ctx = ExplainContext(trained, settings, folder)
    model = trained.model
    if predictions.empty:
        raise VisionlabError("explain: predictions.csv lists no test image; the test split is empty")
    extra = settings.gradcam_class
    if extra is not None:
        ctx.class_index(extra, "gradcam_class")
    layer_name, layer = target_layer(model, settings.target_layer)
    chosen = choose_images(predictions, settings.images_per_class)

    records = [
        explain_image(ctx, layer, row, position, extra) for position, row in enumerate(chosen.itertuples())
    ]
    index: dict[str, Any] = {
        "method": "gradcam",
        "methods": [*(m.name for m in registered()), "feature_maps", "filters", "max_patches"],
        "experiment": experiment,
        "arch": ctx.arch,
        "layer": layer_name,
        "image_size": ctx.size,
        "classes": ctx.classes,
        "html": "index.html",
        "grid": None,
        "images": records,
    }
    if records:
        index["grid"] = "gradcam_grid.png"
        gradcam_grid(records, folder, folder / index["grid"])
    index["feature_maps"] = feature_maps_section(ctx, predictions)
    example = ctx.tensor(ctx.pixels(predictions.path.iloc[0]))
    index["filters"] = filters_section(ctx, example)
    index["patches"] = patches_section(ctx, layer_name, predictions)
    index["thumbnails"] = thumbnail_order(records)
    index["artifacts"] = artifact_list(index)
    (folder / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    write_gallery(folder, index)
    return index


def explain_experiment(params: Params, experiment: str) -> Path:
    """Explanations of one experiment's model on its test set, logged to its MLflow run."""
    exp = params.experiment(experiment)
    trained = load_checkpoint(paths.model_dir(experiment) / "model.pt")
    settings = params.explain_of(experiment)
    trained.model.to(select_device(settings.device, "explain.device"))
    predictions = read_predictions(paths.eval_dir(experiment) / "predictions.csv")
    out = paths.explain_dir(experiment)
    with atomic_dir(out) as scratch:
        index = write_explanations(trained, predictions, settings, scratch, experiment)
    record = paths.model_dir(experiment) / RUN_RECORD
    with finishing(open_run(record, exp.dataset, experiment)) as run:
        run.log_artifact(out, "explanations")
        run.set_tags({"visionlab.gradcam_layer": index["layer"]})
    log.info(
        "%s: explanations of %d images on layer %s, %d files",
        experiment,
        len(index["images"]),
        index["layer"],
        len(index["artifacts"]),
    )
    return out
