"""How well a perceptual hash finds real near-copies: pair counts per distance, sheets to look at.

For every image under a data set's root (one folder per class) this computes ``phash`` and
``dhash`` (the hashes prepare uses), counts image pairs at each Hamming distance, and draws a
contact sheet of a sample of pairs per distance band, left and right image side by side with their
names and sizes, so a person can judge which distances are real copies and which are false alarms.

Usage:  uv run python benchmarks/near_duplicate_check.py IMAGE_ROOT OUT_DIR [--max-distance 14]
Writes OUT_DIR/<method>-d<lo>-<hi>.png and OUT_DIR/pairs.json (counts per distance and method).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageDraw, ImageOps

from visionlab.data.images import load_rgb
from visionlab.data.near_duplicates import HASHES, close_pairs, fingerprint

BANDS = [(0, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14)]


def _sheet(files: list[Path], root: Path, pairs: list[tuple[int, int, int]], path: Path) -> None:
    thumb, caption = 150, 30
    sheet = Image.new("RGB", (4 * thumb, max(len(pairs), 1) * (thumb + caption) // 2 + thumb), "white")
    draw = ImageDraw.Draw(sheet)
    for position, (i, j, distance) in enumerate(pairs):
        x0 = (position % 2) * 2 * thumb
        y = (position // 2) * (thumb + caption)
        for offset, index in ((0, i), (thumb, j)):
            image = load_rgb(files[index])
            size = f"{image.width}x{image.height}"
            sheet.paste(ImageOps.pad(image, (thumb - 4, thumb - 4), color="white"), (x0 + offset + 2, y + 2))
            name = files[index].relative_to(root).as_posix()
            draw.text((x0 + offset + 2, y + thumb - 2), name[-24:], fill="black")
            draw.text((x0 + offset + 2, y + thumb + 12), f"{size} d={distance}", fill="dimgray")
    sheet.save(path)


@click.command()
@click.argument("image_root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--max-distance", default=14, show_default=True)
@click.option("--per-band", default=24, show_default=True, help="pairs drawn per distance band")
@click.option("--seed", default=0, show_default=True)
def main(image_root: Path, out_dir: Path, max_distance: int, per_band: int, seed: int) -> None:
    files = sorted(p for p in image_root.glob("*/*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"images": len(files), "methods": {}}
    rng = np.random.default_rng(seed)
    for method in HASHES:
        hashes = [fingerprint(f, method) for f in files]
        pairs = close_pairs(hashes, max_distance)
        counts = {d: sum(1 for p in pairs if p[2] == d) for d in range(max_distance + 1)}
        cross = {d: sum(1 for p in pairs if p[2] == d and files[p[0]].parent != files[p[1]].parent)
                 for d in range(max_distance + 1)}  # fmt: skip
        summary["methods"][method] = {"pairs_at_distance": counts, "cross_class_at_distance": cross}
        click.echo(f"{method}: pairs per distance {counts}; across classes {cross}")
        for lo, hi in BANDS:
            band = [p for p in pairs if lo <= p[2] <= hi]
            if band:
                chosen = sorted(rng.choice(len(band), min(per_band, len(band)), replace=False).tolist())
                _sheet(
                    files, image_root, [band[k] for k in chosen], out_dir / f"{method}-d{lo:02d}-{hi:02d}.png"
                )
    (out_dir / "pairs.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
