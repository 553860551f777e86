"""Views of the model itself: one image's feature maps, the first layer's filters, and the test-set
patches that drive each class or unit most."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from visionlab.errors import VisionlabError
from visionlab.explanations.context import ExplainContext, slug
from visionlab.explanations.feature_maps import layer_grids
from visionlab.explanations.filters import model_filters
from visionlab.explanations.grids import captioned_grid
from visionlab.explanations.patches import Target, crop, parse_unit, top_patches
from visionlab.explanations.scores import evaluating, model_device, probabilities


def feature_map_row(predictions: pd.DataFrame, wanted: str | None) -> pd.Series:
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


def feature_maps_section(ctx: ExplainContext, predictions: pd.DataFrame) -> dict[str, Any]:
    row = feature_map_row(predictions, ctx.settings.feature_map_image)
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
        file = ctx.save(grid.grid.image, f"feature_maps/{number:03d}-{slug(grid.layer)}.png")
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


def filters_section(ctx: ExplainContext, example: torch.Tensor) -> dict[str, Any]:
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


def scanned_rows(predictions: pd.DataFrame, limit: int | None) -> pd.DataFrame:
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


def _patch_grid(ctx: ExplainContext, items: list[dict], title: str, file: str) -> str:
    tiles = [_read_png(ctx.folder / item["file"]) for item in items]
    captions = [f"score {item['score']:.4g}\n{Path(item['source']).name}" for item in items]
    return ctx.save(captioned_grid(tiles, captions, title), file)


def patches_section(ctx: ExplainContext, layer_name: str, predictions: pd.DataFrame) -> dict[str, Any]:
    rows = scanned_rows(predictions, ctx.settings.patches_max_images)
    targets = [Target(name, layer_name, class_index=i) for i, name in enumerate(ctx.classes)]
    targets += [parse_unit(spec, ctx.model) for spec in ctx.settings.patch_units]

    def load(i: int) -> torch.Tensor:
        return ctx.tensor(ctx.pixels(rows.path[i]))

    found = top_patches(ctx.model, load, len(rows), targets, ctx.settings.patches_top_k, ctx.size)
    sections = []
    for target in targets:
        folder = slug(f"{target.kind}-{target.name}")
        items = []
        for rank, patch in enumerate(found[target.name]):
            row = rows.iloc[patch.image_index]
            pixels = crop(ctx.pixels(row.path), patch.box)
            items.append(
                {
                    "file": ctx.save(pixels, f"patches/{folder}/{rank:02d}-{slug(Path(row.path).stem)}.png"),
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
            grid = _patch_grid(ctx, items, title, f"patches/{folder}-grid.png")
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
