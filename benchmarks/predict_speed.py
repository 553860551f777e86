"""`visionlab predict` images/s before and after streaming, side by side in one run.

"before" is the predict module as it was at commit 31904ee (git show, loaded as a module): every
file decoded into a list first, then float32 batches in one process. "after" is today's
:class:`visionlab.explanations.predict.Predictor` with the CLI's defaults (its ``--workers``
default: decoding in the same process on 2 cores, in worker processes where cores are to spare;
batches of 16 on a CPU), bfloat16 autocast + channels-last where the CPU computes bfloat16
natively, batch norms folded into their convolutions (``runtime/folding.py``). Also timed: today's
code with its speed-ups off one at a time, so each one's share shows, and with ``--workers``
decoding processes. Each configuration runs ``--rounds`` times in turn (interleaved, so a busy
machine slows all alike); the best round counts, and each round's own ratio is listed.

The model is a frozen EfficientNet-Lite0 with its real ImageNet weights (what `flowers-effnet`
predicts with) and a random head: the cost is the network's, whatever the head learnt. Photos:
the shared TensorFlow flowers sample (real JPEGs of several sizes).

Usage:  uv run python benchmarks/predict_speed.py [--images 256] [--rounds 2] [--workers 2]
Writes benchmarks/results/predict_speed.{json,md}.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import source_commit, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))  # the tests' helper for the shared sample photos

from tests.conftest import flower_photos  # noqa: E402
from visionlab.cli import predict as predict_command  # noqa: E402
from visionlab.explanations.predict import Predictor, default_batch  # noqa: E402
from visionlab.models import build_model, load_checkpoint, save_checkpoint  # noqa: E402
from visionlab.params import ModelParams  # noqa: E402

BEFORE = "31904ee"  # the last commit with the decode-everything-first predict
CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


def _git_module(scratch: Path, source_path: str, name: str):
    """``source_path`` as it was at ``BEFORE``, loaded as the module ``name``."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:{source_path}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    path = scratch / f"{name.rsplit('.', 1)[-1]}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _old_checkpoint(path: Path):
    """``load_checkpoint`` as ``BEFORE`` called it: the model and the saved dict's keys it read."""
    found = load_checkpoint(path)
    return found.model, {
        "classes": found.classes,
        "image_size": found.image_size,
        "grayscale": found.grayscale,
    }


def _before_module(scratch: Path):
    """The predict module at ``BEFORE``, with the two interfaces it used that later commits moved:
    its ``explanations/pixels.py`` (loaded from the same commit) and ``load_checkpoint``'s old
    (model, dict) return. What it computes, decoding and the forward pass, is as it was."""
    _git_module(scratch, "src/visionlab/explanations/pixels.py", "visionlab.explanations.pixels")
    module = _git_module(scratch, "src/visionlab/explanations/predict.py", "predict_before")
    module.load_checkpoint = _old_checkpoint
    return module


def _decoding(workers: int) -> str:
    return f"{workers} decoding workers" if workers else "decoding in the same process"


def _checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    spec = ModelParams(arch="efficientnet_lite0", weights="imagenet", base="frozen", augmented=False)
    save_checkpoint(path, build_model(spec, len(CLASSES)), spec, CLASSES, 224)
    return path


@click.command()
@click.option("--images", default=256, show_default=True)
@click.option("--rounds", default=2, show_default=True)
@click.option("--workers", default=min(4, os.cpu_count() or 1), show_default=True)
@click.option("--shared", type=click.Path(path_type=Path), default=ROOT.parent / "shared" / "datasets")
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "benchmarks" / "results")
def main(images: int, rounds: int, workers: int, shared: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        before = _before_module(scratch)
        photos = flower_photos(scratch / "photos", images, shared)
        checkpoint = _checkpoint(scratch / "model.pt")

        def after(amp: bool | None, n_workers: int, fold: bool = True, batch: int | None = None):
            def run(files):
                predictor = Predictor.load(checkpoint, fold=fold)
                if amp is not None:
                    predictor.amp = amp
                return list(predictor.stream(files, workers=n_workers, batch_size=batch))

            return run

        # The headline: `visionlab predict` with its own defaults on this machine (its --workers
        # default, the CPU batch); then today's code with one speed-up changed at a time.
        default = next(option.default for option in predict_command.params if option.name == "workers")
        configs = {
            "before (decode all, float32, 1 process)": lambda files: before.predict_paths(checkpoint, files),
            f"after: `visionlab predict` as it runs here ({_decoding(default)})": after(None, default),
            "after, float32": after(False, default),
            f"after, {_decoding(workers)}": after(None, workers),
            "after, batch norm not folded": after(None, default, fold=False),
            "after, batch 32 (the default before)": after(None, default, batch=32),
        }
        for run in configs.values():  # warm-up: weights loaded, kernels chosen
            run(photos[:16])
        seconds: dict[str, list[float]] = {name: [] for name in configs}
        tops: dict[str, list[str]] = {}
        for _ in range(rounds):
            for name, run in configs.items():
                start = time.perf_counter()
                results = run(photos)
                seconds[name].append(time.perf_counter() - start)
                tops[name] = [r.top[0][0] if r.top else "" for r in results]
        amp = Predictor.load(checkpoint).amp

    base = next(iter(configs))
    rows = [
        {
            "config": name,
            "images": images,
            "best_seconds": round(min(s), 3),
            "images_per_second": round(images / min(s), 1),
            "speedup_vs_before": round(min(seconds[base]) / min(s), 2),
            # Each round's own ratio (the configurations of one round ran back to back): how far
            # the best-of figure can be trusted on a machine whose speed drifts.
            "round_speedups": [round(b / a, 2) for a, b in zip(s, seconds[base], strict=True)],
            "top1_same_as_before": sum(a == b for a, b in zip(tops[name], tops[base], strict=True)),
        }
        for name, s in seconds.items()
    ]
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "bfloat16_native": amp,
        "rounds": rounds,
        "workers": workers,
        "model": "efficientnet_lite0 frozen, ImageNet weights, 224 px, batch "
        f"{default_batch(torch.device('cpu'))} (predict's default on a CPU) unless a row names one",
        "commit": source_commit(ROOT),
    }
    lines = [
        "# `visionlab predict` images/s, before and after streaming (benchmarks/predict_speed.py)",
        "",
        f"{meta['machine']}; bfloat16 native: {amp}; {images} shared flowers photos; {meta['model']}; "
        f"best of {rounds} interleaved rounds; commit {meta['commit'][:12]}.",
        "",
        "| configuration | images/s | x before | x before, each round | top-1 as before |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['config']} | {r['images_per_second']} | {r['speedup_vs_before']} | "
        f"{', '.join(map(str, r['round_speedups']))} | {r['top1_same_as_before']}/{images} |"
        for r in rows
    ]
    write_result(out, "predict_speed", {"meta": meta, "rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
