"""Camera-sized photos through `visionlab predict`: decoding JPEGs at a reduced scale, on and off.

A folder of your own photos is not TF flowers' 500 px JPEGs: a phone writes 4000x3000, and decoding
one at full size costs many times the network's forward pass at 224 px. ``load_rgb`` lets libjpeg
scale such a file down in the DCT (to at least ``DRAFT_MARGIN`` x the input side) before the
resize. This times, side by side in one process and interleaved over ``--rounds``:

- reading one photo into the model's input pixels (``load_pixels``), with the reduced decode and
  with it off (``DRAFT_MARGIN = 0``: a full decode, as before);
- `visionlab predict`'s Predictor on the folder with each, and how many top-1 labels agree.

The photos are generated (smooth colour fields with fine noise, saved at JPEG quality 90), so the
script runs anywhere; the model is a frozen EfficientNet-Lite0 with its ImageNet weights and a
random head, as in predict_speed.py.

Usage:  uv run python benchmarks/large_photos.py [--photos 24] [--width 4000 --height 3000] [--rounds 3]
Writes benchmarks/results/large_photos.{json,md}.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import source_commit, write_result  # noqa: E402

from visionlab.data import images  # noqa: E402
from visionlab.explanations.predict import Predictor  # noqa: E402
from visionlab.models import build_model, save_checkpoint  # noqa: E402
from visionlab.params import ModelParams  # noqa: E402
from visionlab.runtime.preprocess import load_pixels  # noqa: E402

CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
SIZE = 224


def _photos(folder: Path, count: int, width: int, height: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    found = []
    for index in range(count):
        coarse = Image.fromarray(rng.integers(0, 255, (height // 100, width // 100, 3), dtype=np.uint8))
        pixels = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
        pixels += rng.normal(0, 6, pixels.shape).astype(np.float32)
        path = folder / f"photo_{index:03d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        found.append(path)
    return found


def _checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    spec = ModelParams(arch="efficientnet_lite0", weights="imagenet", base="frozen", augmented=False)
    save_checkpoint(path, build_model(spec, len(CLASSES)), spec, CLASSES, SIZE)
    return path


@click.command()
@click.option("--photos", default=24, show_default=True)
@click.option("--width", default=4000, show_default=True)
@click.option("--height", default=3000, show_default=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "benchmarks" / "results")
def main(photos: int, width: int, height: int, rounds: int, out: Path) -> None:
    margin = images.DRAFT_MARGIN
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        files = _photos(scratch / "photos", photos, width, height)
        predictor = Predictor.load(_checkpoint(scratch / "model.pt"))

        def decode() -> list:
            return [load_pixels(f, SIZE, False) for f in files]

        def predict() -> list:
            return [r.top[0][0] for r in predictor.stream(files)]

        list(predictor.stream(files[:2]))  # warm-up: weights laid out, kernels chosen
        modes = {"reduced decode (today)": margin, "full decode (before)": 0}
        seconds: dict[tuple[str, str], list[float]] = {}
        outputs: dict[tuple[str, str], list] = {}
        for _ in range(rounds):
            for mode, value in modes.items():
                images.DRAFT_MARGIN = value
                for what, run in (("decode", decode), ("predict", predict)):
                    started = time.perf_counter()
                    outputs[(what, mode)] = run()
                    seconds.setdefault((what, mode), []).append(time.perf_counter() - started)
        images.DRAFT_MARGIN = margin
    today, before = modes
    pixels_today = np.stack(outputs[("decode", today)]).astype(np.float32)
    pixels_before = np.stack(outputs[("decode", before)]).astype(np.float32)
    same_top1 = sum(
        a == b for a, b in zip(outputs[("predict", today)], outputs[("predict", before)], strict=True)
    )
    rows = [
        {
            "what": what,
            "mode": mode,
            "best_seconds": round(min(s), 3),
            "images_per_second": round(photos / min(s), 1),
        }
        for (what, mode), s in seconds.items()
    ]
    speedups = {
        what: round(min(seconds[(what, before)]) / min(seconds[(what, today)]), 2)
        for what in ("decode", "predict")
    }
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "photos": photos,
        "photo_size": f"{width}x{height}",
        "input_side": SIZE,
        "draft_margin": margin,
        "rounds": rounds,
        "commit": source_commit(ROOT),
        "pixel_difference_mean": round(float(np.abs(pixels_today - pixels_before).mean()), 3),
        "pixel_difference_max": float(np.abs(pixels_today - pixels_before).max()),
        "top1_same": same_top1,
        "speedup": speedups,
    }
    lines = [
        "# Camera-sized photos: reduced-scale JPEG decoding (benchmarks/large_photos.py)",
        "",
        f"{meta['machine']}; {photos} generated {width}x{height} JPEGs (quality 90) to {SIZE} px; "
        f"best of {rounds} interleaved rounds; commit {meta['commit'][:12]}.",
        "",
        "| step | decoding | images/s |",
        "|---|---|---:|",
    ]
    lines += [f"| {r['what']} | {r['mode']} | {r['images_per_second']} |" for r in rows]
    lines += [
        "",
        f"Reduced decode vs full: load_pixels {speedups['decode']}x, predict {speedups['predict']}x. "
        f"Input pixels differ by {meta['pixel_difference_mean']} levels of 255 on average "
        f"(at most {meta['pixel_difference_max']:.0f}); top-1 the same for {same_top1} of {photos} photos.",
    ]
    write_result(out, "large_photos", {"meta": meta, "rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
