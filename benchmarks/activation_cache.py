"""Fine-tuning on cached activations against fine-tuning on images, through the real stages.

Two runs of the same experiment (ImageNet EfficientNet-Lite0, ``base: finetune`` from
``backbone.blocks.5``, one head epoch then fine-tuning epochs, the shared flowers sample at
224 px) through the featurize and train stages' own code, in a scratch project: one with
``activation_cache: off`` (phase two runs the whole network on the images), one with the
default ``bfloat16`` cache (phase two runs blocks 5-6, the 1x1 conv and the head on the stored
activations). Reported: seconds per fine-tuning epoch (history.csv), the featurize stage's
seconds, the cache's size, and validation accuracy of both.

Usage:  uv run python benchmarks/activation_cache.py [--shared DIR] [--per-class 80] [--epochs 2]
Writes benchmarks/results/activation_cache.{json,md}.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import click
import pandas as pd
import torch
import yaml

from visionlab.data.prepare_stage import prepare_dataset
from visionlab.data.resolve_stage import resolve_stage
from visionlab.params import parse_params
from visionlab.runtime.device import cpu_supports_bf16, use_amp, use_amp_on_cached_top
from visionlab.runtime.feature_cache import featurize_seconds
from visionlab.training.featurize_stage import featurize_experiment
from visionlab.training.train_stage import train_experiment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import source_commit, write_result

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def scratch_project(folder: Path, archive: Path, per_class: int, amp: str, epochs: int) -> dict:
    """A project folder holding ``per_class`` photos per class and params for both runs."""
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "unpacked", filter="data")
    source = next((folder / "unpacked").rglob("daisy")).parent
    rng = random.Random(0)
    for label in sorted(p.name for p in source.iterdir() if p.is_dir()):
        files = sorted((source / label).glob("*.jpg"))
        target = folder / "data/raw/flowers/flower_photos" / label
        target.mkdir(parents=True)
        for file in rng.sample(files, min(per_class, len(files))):
            shutil.copy(file, target / file.name)
    shutil.rmtree(folder / "unpacked")
    (folder / "dvc.yaml").write_text("stages: {}\n")
    model = {
        "arch": "efficientnet_lite0",
        "weights": "imagenet",
        "base": "finetune",
        "unfreeze_from": "backbone.blocks.5",
        "augmented": False,
    }
    return {
        "datasets": {
            "flowers": {"source": {"url": "http://127.0.0.1:9/flower_photos.tgz"}, "root": "flower_photos"}
        },
        "prepare": {"split": {"train": 0.7, "val": 0.3, "test": 0.0}, "workers": 1},
        "models": {
            "images": {**model, "activation_cache": "off"},
            "cached": {**model, "activation_cache": "bfloat16"},
        },
        "recipes": {"probe": {"epochs": 1 + epochs, "head_epochs": 1, "batch_size": 32, "num_workers": 0}},
        "experiments": {
            name: {"dataset": "flowers", "model": name, "recipe": "probe"} for name in ("images", "cached")
        },
        "train": {"image_size": 224, "amp": amp, "resume": False, "early_stopping_patience": 0},
        "evaluate": {"num_workers": 0, "batch_size": 32},
    }


@click.command()
@click.option("--shared", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "datasets")
@click.option(
    "--per-class", default=80, show_default=True, help="fewer make the per-epoch fixed costs dominate"
)
@click.option("--epochs", default=2, show_default=True, help="fine-tuning epochs after the head epoch")
@click.option("--amp", type=click.Choice(["auto", "bf16", "off"]), default="auto", show_default=True)
def main(shared: Path, per_class: int, epochs: int, amp: str) -> None:
    commit = source_commit(REPO)  # as the run starts: the tree may change while it runs
    results: dict = {}
    archive = shared.resolve() / "flower_photos.tgz"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        raw = scratch_project(folder, archive, per_class, amp, epochs)
        os.chdir(folder)
        os.environ["VISIONLAB_PROJECT_ROOT"] = str(folder)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
        (folder / "params.yaml").write_text(yaml.safe_dump(raw))
        params = parse_params(raw)
        prepare_dataset(params, "flowers")
        resolve_stage(params)  # featurize reads its record, as after `dvc repro resolve`
        for name in ("images", "cached"):
            featurize_experiment(params, name)
            info = json.loads((folder / "data/features" / name / "info.json").read_text())
            train_experiment(params, name)
            history = pd.read_csv(folder / "results" / name / "history.csv")
            tuned = history[history.phase == "finetune"]
            results[name] = {
                "featurize_seconds": featurize_seconds(name, folder) or 0.0,
                "cache_bytes": info.get("activation_bytes", 0),
                "cache_shape": info.get("activation_shape"),
                "cached_images": info.get("train_images", 0) + info.get("val_images", 0),
                "finetune_epoch_seconds": round(float(tuned.seconds.mean()), 2),
                "head_epoch_seconds": round(float(history[history.phase == "head"].seconds.mean()), 2),
                "final_val_accuracy": round(float(history.val_accuracy.iloc[-1]), 4),
            }
    images, cached = results["images"], results["cached"]
    speedup = images["finetune_epoch_seconds"] / cached["finetune_epoch_seconds"]
    report = {
        "threads": torch.get_num_threads(),
        "amp": amp,
        "cpu_bf16": cpu_supports_bf16(),
        "per_class": per_class,
        "runs": results,
        "finetune_epoch_speedup": round(speedup, 2),
    }
    report["load_average"] = [round(v, 1) for v in os.getloadavg()]  # other work skews the timings
    report["commit"] = commit
    per_image = cached["cache_bytes"] / max(1, cached["cached_images"])
    row = "| {} | {} | {} |".format
    cpu = torch.device("cpu")
    lines = [
        "# Fine-tuning on cached activations vs on images (benchmarks/activation_cache.py)",
        "",
        f"EfficientNet-Lite0 (ImageNet), base: finetune from backbone.blocks.5, 224 px, batch 32, "
        f"train.amp: {amp} (native CPU bfloat16: {cpu_supports_bf16()}), {torch.get_num_threads()} threads; "
        f"{per_class} photos per class of the shared flowers sample, 70/30 train/val, through the "
        "featurize and train stages' code. Autocast in the fine-tuning phase: "
        f"on images {use_amp(cpu, amp)}, on cached activations {use_amp_on_cached_top(cpu, amp)} "
        "(a CPU trains those top blocks in float32 under auto: bfloat16 made them about 2x slower).",
        "",
        "| measure | on images (activation_cache: off) | on cached activations (bfloat16) |",
        "|---|---:|---:|",
        *(
            row(label, images[key], cached[key])
            for label, key in (
                ("seconds per fine-tuning epoch", "finetune_epoch_seconds"),
                ("seconds per head epoch", "head_epoch_seconds"),
                ("featurize seconds", "featurize_seconds"),
                ("validation accuracy after training", "final_val_accuracy"),
            )
        ),
        "",
        f"Speed-up per fine-tuning epoch: **{speedup:.2f}x**. Cache: {cached['cache_shape']} per image, "
        f"{cached['cache_bytes'] / 1e6:.1f} MB for {cached['cached_images']} train + val images "
        f"({per_image / 1e3:.1f} KB per image with its pooled features and path).",
    ]
    lines.append(f"\nLoad average at the end (1, 5, 15 min): {report['load_average']}. Commit: {commit}.")
    write_result(RESULTS, "activation_cache", report, "\n".join(lines))


if __name__ == "__main__":
    main()
