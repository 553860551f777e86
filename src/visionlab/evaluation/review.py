"""Extra-image review: a contact sheet of the images least like the rest of their class.

The flowers study removed 73 "extra" images (the flower is not the subject) by looking at each
one. This ranks every image of a prepared data set by the cosine similarity of its ImageNet
EfficientNet-Lite0 embedding to its class centroid, and draws the lowest-scoring ones with their
file names, so a person can copy the right ones into the data set's exclusion list.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageOps

from visionlab import paths
from visionlab.data.images import load_rgb
from visionlab.data.manifest import read_manifest
from visionlab.models import build_model
from visionlab.params import DatasetCard, ModelParams
from visionlab.runtime.inference import gather_outputs
from visionlab.runtime.loaders import image_dataset, loader

EMBEDDER = ModelParams(arch="efficientnet_lite0", weights="imagenet", base="frozen", augmented=False)


def score_images(
    manifest: pd.DataFrame, classes: list[str], image_size: int, batch_size: int = 32
) -> pd.DataFrame:
    """``manifest`` plus a ``similarity`` column: cosine to the centroid of the image's class."""
    model = build_model(EMBEDDER, len(classes)).eval()
    batches = loader(image_dataset(manifest, classes, image_size, model), batch_size, False, 2)
    features, labels = gather_outputs(model.forward_features, batches, torch.device("cpu"), desc="embedding")
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


def exclusion_key(path: str, label: str, image_root: Path) -> str:
    """The ``<class>/<file>`` line the data set's exclusion list takes for the image at ``path``."""
    try:
        return PurePosixPath(path).relative_to(image_root.as_posix()).as_posix()
    except ValueError:  # not under the root (a manifest from elsewhere): the class folder and name
        return f"{label}/{PurePosixPath(path).name}"


def image_root(card: DatasetCard, dataset: str) -> Path:
    """The folder exclusion-list entries are relative to (prepare writes CIFAR's PNGs itself)."""
    if card.format == "cifar10_pickle":
        return paths.prepared_dir(dataset)
    return paths.raw_dir(dataset) / card.root


def _wrap(draw: ImageDraw.ImageDraw, text: str, width: float) -> list[str]:
    """Cut ``text`` into lines no wider than ``width`` pixels; file names have no spaces to break at."""
    lines, current = [], ""
    for char in text:
        if current and draw.textlength(current + char) > width:
            lines.append(current)
            current = ""
        current += char
    return [*lines, current] if current else lines


def contact_sheet(rows: pd.DataFrame, path: Path, thumb: int = 160, columns: int = 6) -> None:
    """Thumbnails in a grid, each captioned with its whole exclusion-list entry and score.

    The entry wraps over as many lines as it needs (never clipped), so it can be copied as is.
    """
    line = 12
    count = max(len(rows), 1)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    names = [_wrap(measure, row.exclusion, thumb - 6) for row in rows.itertuples()]
    caption = (max((len(n) for n in names), default=1) + 1) * line + 4
    grid_rows = math.ceil(count / columns)
    sheet = Image.new("RGB", (columns * thumb, grid_rows * (thumb + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for position, (row, name) in enumerate(zip(rows.itertuples(), names, strict=True)):
        x, y = (position % columns) * thumb, (position // columns) * (thumb + caption)
        image = ImageOps.pad(load_rgb(Path(row.path)), (thumb - 4, thumb - 4), color="white")
        sheet.paste(image, (x + 2, y + 2))
        for number, text in enumerate(name):
            draw.text((x + 3, y + thumb + number * line), text, fill="black")
        draw.text((x + 3, y + thumb + len(name) * line), f"similarity {row.similarity:.3f}", fill="dimgray")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def review_dataset(
    card: DatasetCard, dataset: str, count: int, out_dir: Path, image_size: int = 224
) -> tuple[Path, Path]:
    """Write ``<dataset>-review.png`` (the ``count`` least typical images) and a CSV of all scores.

    The CSV's first column, ``exclusion``, is in the form the exclusion list takes.
    """
    manifest, classes = read_manifest(paths.prepared_dir(dataset))
    scored = score_images(manifest, classes, image_size)
    root = image_root(card, dataset)
    keys = [exclusion_key(p, label, root) for p, label in zip(scored.path, scored.label, strict=True)]
    scored.insert(0, "exclusion", keys)
    out_dir.mkdir(parents=True, exist_ok=True)
    sheet, table = out_dir / f"{dataset}-review.png", out_dir / f"{dataset}-review.csv"
    contact_sheet(scored.head(count), sheet)
    scored.to_csv(table, index=False)
    return sheet, table
