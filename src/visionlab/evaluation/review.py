"""Extra-image review: a contact sheet of the images least like the rest of their class.

The flowers study removed 73 "extra" images (the flower is not the subject) by looking at each
one. This ranks every image of a prepared data set by the cosine similarity of its ImageNet
EfficientNet-Lite0 embedding to its class centroid, and draws the lowest-scoring ones with their
file names, so a person can copy the right ones into the data set's exclusion list.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageOps

from visionlab import paths
from visionlab.data.images import load_rgb
from visionlab.data.manifest import read_manifest
from visionlab.models import build_model
from visionlab.params import ModelParams
from visionlab.training.data import image_dataset, loader
from visionlab.training.inference import collect

EMBEDDER = ModelParams(arch="efficientnet_lite0", weights="imagenet", base="frozen", augmented=False)


def score_images(
    manifest: pd.DataFrame, classes: list[str], image_size: int, batch_size: int = 32
) -> pd.DataFrame:
    """``manifest`` plus a ``similarity`` column: cosine to the centroid of the image's class."""
    model = build_model(EMBEDDER, len(classes)).eval()
    batches = loader(image_dataset(manifest, classes, image_size, model), batch_size, False, 2)
    features, labels = collect(model.forward_features, batches, torch.device("cpu"), desc="embedding")
    features = F.normalize(features, dim=1)
    scores = torch.empty(len(labels))
    for index in range(len(classes)):
        members = labels == index
        if members.any():
            centroid = F.normalize(features[members].mean(0), dim=0)
            scores[members] = features[members] @ centroid
    scored = manifest.copy()
    scored["similarity"] = scores.numpy()
    return scored.sort_values(["similarity", "path"]).reset_index(drop=True)


def contact_sheet(rows: pd.DataFrame, path: Path, thumb: int = 160, columns: int = 6) -> None:
    """Thumbnails in a grid, each captioned with its class/file name and score."""
    caption = 34
    count = max(len(rows), 1)
    grid_rows = math.ceil(count / columns)
    sheet = Image.new("RGB", (columns * thumb, grid_rows * (thumb + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for position, row in enumerate(rows.itertuples()):
        x, y = (position % columns) * thumb, (position // columns) * (thumb + caption)
        image = ImageOps.pad(load_rgb(Path(row.path)), (thumb - 4, thumb - 4), color="white")
        sheet.paste(image, (x + 2, y + 2))
        name = f"{row.label}/{Path(row.path).name}"
        draw.text((x + 3, y + thumb), name[-30:], fill="black")
        draw.text((x + 3, y + thumb + 14), f"similarity {row.similarity:.3f}", fill="dimgray")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def review_dataset(dataset: str, count: int, out_dir: Path, image_size: int = 224) -> tuple[Path, Path]:
    """Write ``<dataset>-review.png`` (the ``count`` least typical images) and a CSV of all scores."""
    manifest, classes = read_manifest(paths.prepared_dir(dataset))
    scored = score_images(manifest, classes, image_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    sheet, table = out_dir / f"{dataset}-review.png", out_dir / f"{dataset}-review.csv"
    contact_sheet(scored.head(count), sheet)
    scored.to_csv(table, index=False)
    return sheet, table
