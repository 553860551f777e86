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
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from PIL import Image

from visionlab import paths
from visionlab.atomic import atomic_dir
from visionlab.errors import MissingArtifactError, VisionlabError
from visionlab.explanations.artifact_index import artifact_list, thumbnail_order
from visionlab.explanations.feature_maps import layer_grids
from visionlab.explanations.filters import model_filters
from visionlab.explanations.gallery import write_gallery
from visionlab.explanations.gradcam import class_maps, colour, overlay, target_layer
from visionlab.explanations.grids import captioned_grid, save_png
from visionlab.explanations.guided import gradient_image, guided_backprop, guided_grad_cam
from visionlab.explanations.patches import Target, crop, parse_unit, top_patches
from visionlab.explanations.pixels import as_rgb, is_grey, load_pixels, to_tensor
from visionlab.explanations.scores import evaluating, model_device, probabilities
from visionlab.models import Classifier, load_checkpoint
from visionlab.params import ExplainParams, Params
from visionlab.tracking import RUN_RECORD, finishing, open_run
from visionlab.training.runtime import select_device

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


def _slug(text: str) -> str:
    """A file-name-safe form of a class or layer name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


class _Context:
    """What every section needs: the model, its input geometry, and the output folder."""

    def __init__(self, model: Classifier, checkpoint: dict[str, Any], settings: ExplainParams, folder: Path):
        self.model = model
        self.classes: list[str] = list(checkpoint["classes"])
        self.size: int = int(checkpoint["image_size"])
        self.grey = is_grey(model, bool(checkpoint.get("grayscale", False)))
        self.arch: str = str(checkpoint.get("spec", {}).get("arch", type(model).__name__))
        self.settings = settings
        self.folder = folder
        self.index = {name: i for i, name in enumerate(self.classes)}

    def pixels(self, path: str) -> np.ndarray:
        try:
            return load_pixels(Path(path), self.size, self.grey)
        except Exception as exc:  # any decoding failure: name the file
            raise VisionlabError(
                f"{path}: cannot read the test image ({exc}); rerun the prepare stage"
            ) from None

    def tensor(self, pixels: np.ndarray) -> torch.Tensor:
        return to_tensor(pixels, self.model)

    def class_index(self, name: str, key: str) -> int:
        if name not in self.index:
            raise VisionlabError(f"explain.{key}: no class {name!r} (classes: {', '.join(self.classes)})")
        return self.index[name]

    def save(self, pixels: np.ndarray, relative: str) -> str:
        save_png(pixels, self.folder / relative)
        return relative


def _explain_image(ctx: _Context, layer: Any, row: Any, position: int, extra: str | None) -> dict[str, Any]:
    """Every per-image explanation of one test image, for each class worth explaining."""
    verdict = "correct" if row.correct else "misclassified"
    stem = f"{_slug(row.label)}/{verdict}-{position:03d}-{_slug(Path(row.path).stem)}"
    pixels = ctx.pixels(row.path)
    rgb = as_rgb(pixels)
    tensor = ctx.tensor(pixels)
    wanted = (
        [row.predicted] + ([row.label] if row.label != row.predicted else []) + ([extra] if extra else [])
    )
    explanations = []
    for name in dict.fromkeys(w for w in wanted if w in ctx.index):
        c = ctx.index[name]
        maps = class_maps(ctx.model, layer, tensor, c)
        guided = guided_backprop(ctx.model, tensor, c)
        both = guided_grad_cam(ctx.model, layer, tensor, c, cam=maps.gradcam, guided=guided)
        base = f"{stem}-{_slug(name)}"
        explanations.append(
            {
                "class": name,
                "probability": float(maps.probabilities[c]),
                "gradcam": ctx.save(colour(maps.gradcam), f"{base}-gradcam.png"),
                "gradcam_overlay": ctx.save(
                    overlay(rgb, maps.gradcam, ctx.settings.alpha), f"{base}-overlay.png"
                ),
                "gradcam_pp": ctx.save(colour(maps.gradcam_pp), f"{base}-gradcampp.png"),
                "gradcam_pp_overlay": ctx.save(
                    overlay(rgb, maps.gradcam_pp, ctx.settings.alpha), f"{base}-gradcampp-overlay.png"
                ),
                "guided_backprop": ctx.save(gradient_image(guided), f"{base}-guided.png"),
                "guided_gradcam": ctx.save(gradient_image(both), f"{base}-guided-gradcam.png"),
            }
        )
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


def _grid(records: list[dict], folder: Path, path: Path) -> None:
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


def _feature_map_row(predictions: pd.DataFrame, wanted: str | None) -> pd.Series:
    if wanted is None:
        correct = predictions[predictions.correct]
        return (correct if len(correct) else predictions).iloc[0]
    matches = predictions[
        (predictions.path == wanted) | (predictions.path.map(lambda p: Path(p).name) == wanted)
    ]
    if len(matches):
        return matches.iloc[0]
    if Path(wanted).is_file():
        return pd.Series({"path": wanted, "label": "unknown", "predicted": "", "confidence": float("nan")})
    raise VisionlabError(
        f"explain.feature_map_image: {wanted!r} is neither a test image of predictions.csv nor a file"
    )


def _feature_maps(ctx: _Context, predictions: pd.DataFrame) -> dict[str, Any]:
    row = _feature_map_row(predictions, ctx.settings.feature_map_image)
    pixels = ctx.pixels(row["path"])
    tensor = ctx.tensor(pixels)
    with evaluating(ctx.model), torch.no_grad():
        probs = probabilities(ctx.model(tensor[None].to(model_device(ctx.model))))[0]
    predicted = int(np.argmax(probs))
    source = {
        "source": row["path"],
        "label": row["label"],
        "predicted": ctx.classes[predicted],
        "confidence": float(probs[predicted]),
        "file": ctx.save(pixels, "feature_maps/input.png"),
    }
    layers = []
    for number, grid in enumerate(
        layer_grids(ctx.model, tensor, ctx.settings.feature_map_layers, ctx.settings.feature_map_max_channels)
    ):
        file = ctx.save(grid.grid.image, f"feature_maps/{number:03d}-{_slug(grid.layer)}.png")
        layers.append(
            {
                "layer": grid.layer,
                "file": file,
                "channels": grid.channels,
                "shown": grid.shown,
                "map_size": list(grid.map_size),
            }
        )
    return {"image": source, "layers": layers}


def _filters(ctx: _Context, example: torch.Tensor) -> dict[str, Any]:
    grids = model_filters(ctx.model, example)
    section: dict[str, Any] = {
        "layer": grids.layer,
        "kernels": grids.kernels,
        "in_channels": grids.in_channels,
        "kernel_size": list(grids.kernel_size),
        "colour": None,
        "channels": ctx.save(grids.channels.image, "filters/channels.png"),
    }
    if grids.colour is not None:
        section["colour"] = ctx.save(grids.colour.image, "filters/colour.png")
    return section


def _scanned_rows(predictions: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """The test images searched for patches: all, or a seeded sample in which every class keeps
    its share (at least one image each), so a rare class still has candidates."""
    rows = predictions
    if limit is not None and len(rows) > limit:
        share = limit / len(rows)
        rows = pd.concat(
            group.sample(n=max(1, round(share * len(group))), random_state=0)
            for _, group in rows.groupby("label", sort=True)
        )
    return rows.sort_values("path").reset_index(drop=True)


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture)


def _patch_grid(ctx: _Context, items: list[dict], title: str, file: str) -> str:
    tiles = [_read_png(ctx.folder / item["file"]) for item in items]
    captions = [f"score {item['score']:.4g}\n{Path(item['source']).name}" for item in items]
    return ctx.save(captioned_grid(tiles, captions, title), file)


def _patches(ctx: _Context, layer_name: str, predictions: pd.DataFrame) -> dict[str, Any]:
    rows = _scanned_rows(predictions, ctx.settings.patches_max_images)
    targets = [Target(name, layer_name, class_index=i) for i, name in enumerate(ctx.classes)]
    targets += [parse_unit(spec, ctx.model) for spec in ctx.settings.patch_units]

    def load(i: int) -> torch.Tensor:
        return ctx.tensor(ctx.pixels(rows.path[i]))

    found = top_patches(ctx.model, load, len(rows), targets, ctx.settings.patches_top_k, ctx.size)
    sections = []
    for target in targets:
        slug = _slug(f"{target.kind}-{target.name}")
        items = []
        for rank, patch in enumerate(found[target.name]):
            row = rows.iloc[patch.image_index]
            pixels = crop(ctx.pixels(row.path), patch.box)
            items.append(
                {
                    "file": ctx.save(pixels, f"patches/{slug}/{rank:02d}-{_slug(Path(row.path).stem)}.png"),
                    "source": row.path,
                    "label": row.label,
                    "predicted": row.predicted,
                    "score": patch.score,
                    "strength": patch.strength,
                    "box": list(patch.box),  # top, left, side in the resized input
                    "position": list(patch.position),  # in the layer's map
                }
            )
        grid = None
        if items:
            title = f"{ctx.arch}: {target.kind} {target.name} ({target.layer})"
            grid = _patch_grid(ctx, items, title, f"patches/{slug}-grid.png")
        sections.append(
            {
                "kind": target.kind,
                "name": target.name,
                "layer": target.layer,
                "class_index": target.class_index,
                "channel": target.channel,
                "side": items[0]["box"][2] if items else None,
                "grid": grid,
                "patches": items,
            }
        )
    return {
        "images_scanned": len(rows),
        "score": "model output on the patch pasted at its box into a canvas of normalised zeros: "
        "class logit (margin for a fixed logit) or unit activation at the patch's position",
        "targets": sections,
    }


def write_explanations(
    model: Classifier,
    checkpoint: dict[str, Any],
    predictions: pd.DataFrame,
    settings: ExplainParams,
    folder: Path,
    experiment: str = "",
) -> dict[str, Any]:
    """Write every explanation into ``folder`` (index.json and index.html included); return the index."""
    ctx = _Context(model, checkpoint, settings, folder)
    if predictions.empty:
        raise VisionlabError("explain: predictions.csv lists no test image; the test split is empty")
    extra = settings.gradcam_class
    if extra is not None:
        ctx.class_index(extra, "gradcam_class")
    layer_name, layer = target_layer(model, settings.target_layer)
    chosen = choose_images(predictions, settings.images_per_class)

    records = [
        _explain_image(ctx, layer, row, position, extra) for position, row in enumerate(chosen.itertuples())
    ]
    index: dict[str, Any] = {
        "method": "gradcam",
        "methods": [
            "gradcam",
            "gradcam_pp",
            "guided_backprop",
            "guided_gradcam",
            "feature_maps",
            "filters",
            "max_patches",
        ],
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
        _grid(records, folder, folder / index["grid"])
    index["feature_maps"] = _feature_maps(ctx, predictions)
    example = ctx.tensor(ctx.pixels(predictions.path.iloc[0]))
    index["filters"] = _filters(ctx, example)
    index["patches"] = _patches(ctx, layer_name, predictions)
    index["thumbnails"] = thumbnail_order(records)
    index["artifacts"] = artifact_list(index)
    (folder / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    write_gallery(folder, index)
    return index


def explain_experiment(params: Params, experiment: str) -> Path:
    """Explanations of one experiment's model on its test set, logged to its MLflow run."""
    exp = params.experiment(experiment)
    model, checkpoint = load_checkpoint(paths.model_dir(experiment) / "model.pt")
    settings = params.explain_of(experiment)
    model.to(select_device(settings.device, "explain.device"))
    predictions = read_predictions(paths.eval_dir(experiment) / "predictions.csv")
    out = paths.explain_dir(experiment)
    with atomic_dir(out) as scratch:
        index = write_explanations(model, checkpoint, predictions, settings, scratch, experiment)
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
