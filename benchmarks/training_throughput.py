"""Training throughput of every model family: through the pipeline's data path vs synthetic tensors.

For each architecture, side by side in one run on this machine:
  * pipeline: the train stage's own data path (ImageDataset over real JPEG files from the shared
    flowers sample, decoded and resized, normalised with the model's mean/std, preloaded into memory
    as the train stage does when the images fit, then the DataLoader) feeding the real fit loop;
  * on the fly: the same without preloading (decoding in ``num_workers`` processes every epoch);
  * synthetic: the same model and fit loop fed random tensors of the same shape from memory.
The ratio pipeline / synthetic is the share of model speed the data path keeps (target: >= 0.9).
Frozen bases train on cached features, so for them the featurize pass (backbone inference) is
timed the same three ways. ImageNet weights are not needed to time a network: all run with
``weights: none`` (same graph, same cost).

Usage:  uv run python benchmarks/training_throughput.py [--shared ../shared/datasets] [--images 64]
Writes benchmarks/results/training_throughput.{json,md}.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import click
import torch
from torch.utils.data import DataLoader, TensorDataset

from visionlab.models import build_model
from visionlab.params import ModelParams, TrainParams
from visionlab.training.data import ImageDataset, loader
from visionlab.training.inference import gather_outputs
from visionlab.training.loop import fit

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# (label, arch, base, input side, grayscale, batch size)
CASES = [
    ("handmade_cnn", "handmade_cnn", "trainable", 224, False, 32),
    ("simple_cnn", "simple_cnn", "trainable", 224, False, 32),
    ("catsdogs_cnn", "catsdogs_cnn", "trainable", 200, True, 32),
    ("cifar_base", "cifar_base", "trainable", 32, False, 64),
    ("cifar_inception", "cifar_inception", "trainable", 32, False, 64),
    ("cifar_residual", "cifar_residual", "trainable", 32, False, 64),
    ("caltech_cnn1", "caltech_cnn1", "trainable", 224, False, 32),
    ("caltech_cnn3", "caltech_cnn3", "trainable", 224, False, 32),
    ("efficientnet_lite0 finetune", "efficientnet_lite0", "trainable", 224, False, 32),
    ("mobilenet_v2 trainable", "mobilenet_v2", "trainable", 224, False, 32),
    ("resnet50 featurize", "resnet50", "frozen", 224, False, 32),
    ("vgg16 featurize", "vgg16", "frozen", 224, False, 32),
    ("inception_v3 featurize", "inception_v3", "frozen", 299, False, 32),
    ("efficientnet_lite0 featurize", "efficientnet_lite0", "frozen", 224, False, 32),
]


def _images(shared: Path, count: int, folder: Path) -> list[str]:
    with tarfile.open(shared / "flower_photos.tgz") as archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(".jpg")][:count]
        archive.extractall(folder, members=members, filter="data")
    return [str(folder / m.name) for m in members]


def _spec(arch: str, base: str, num_classes: int) -> ModelParams:
    # Timing needs the graph, not the weights: pretrained archs are built without them.
    weights = "imagenet" if base == "frozen" else "none"
    if arch in ("efficientnet_lite0",) and base == "trainable":
        weights = "none"
    return ModelParams(arch=arch, weights=weights, base=base, augmented=False)


def _time_training(model, dataset, batch_size: int, workers: int, epochs: int) -> float:
    settings = TrainParams(epochs=epochs, batch_size=batch_size, early_stopping_patience=0, lr=1e-4)
    empty = TensorDataset(torch.empty(0), torch.empty(0, dtype=torch.long))
    batches = loader(dataset, batch_size, shuffle=True, workers=workers, seed=0)
    result = fit(model, batches, DataLoader(empty), settings, torch.device("cpu"), desc="bench")
    return result.samples_per_second


def _time_featurize(model, dataset, batch_size: int, workers: int) -> float:
    batches = loader(dataset, batch_size, shuffle=False, workers=workers)
    started = time.perf_counter()
    gather_outputs(model.forward_features, batches, torch.device("cpu"))
    return len(dataset) / (time.perf_counter() - started)


def _measure(case, paths: list[str], epochs: int, workers: int, rounds: int, min_seconds: float) -> dict:
    label, arch, base, size, grayscale, batch = case
    classes = 2 if arch == "catsdogs_cnn" else 5
    labels = [i % classes for i in range(len(paths))]
    model = build_model(_spec(arch, base, classes), classes, load_weights=False, grayscale=grayscale)
    channels = model.in_channels

    def dataset(preload: bool) -> ImageDataset:
        data = ImageDataset(paths, labels, size, model.mean, model.std, grayscale, channels)
        if preload:
            started = time.perf_counter()
            data.preload()
            data.preload_seconds = time.perf_counter() - started
        return data

    synthetic = TensorDataset(torch.randn(len(paths), channels, size, size), torch.tensor(labels))
    preloaded = dataset(True)
    preload_rate = len(paths) / preloaded.preload_seconds
    if base == "frozen":
        model.eval()
        sources = {
            "synthetic": lambda: _time_featurize(model, synthetic, batch, 0),
            # Featurize reads each image once, so its preload (decoding) is part of its cost.
            "pipeline": lambda: _time_featurize(model, dataset(True), batch, 0),
            "on_the_fly": lambda: _time_featurize(model, dataset(False), batch, workers),
        }
    else:
        # Short timings are at the mercy of the scheduler: time enough epochs for each
        # measurement to last about min_seconds, judged from an untimed warm-up epoch.
        warm = _time_training(model, synthetic, batch, 0, 1)
        epochs = max(epochs, math.ceil(min_seconds * warm / len(paths)))
        sources = {
            "synthetic": lambda: _time_training(model, synthetic, batch, 0, epochs),
            "pipeline": lambda: _time_training(model, preloaded, batch, 0, epochs),
            "on_the_fly": lambda: _time_training(model, dataset(False), batch, workers, epochs),
        }
    # Interleaved rounds, median per source: a slow spell of the shared machine or a cold cache
    # hits every source alike instead of whichever happened to run first.
    samples: dict[str, list[float]] = {name: [] for name in sources}
    for _ in range(rounds):
        for name, measure in sources.items():
            samples[name].append(measure())
    rates = {name: statistics.median(values) for name, values in samples.items()}
    if base != "frozen":
        rates["preload_images_per_second"] = preload_rate
    return {
        "model": label,
        "input": f"{size}x{size}x{channels}",
        "mode": "featurize (frozen base)" if base == "frozen" else "train",
        **{k: round(v, 2) for k, v in rates.items()},
        "pipeline_ratio": round(rates["pipeline"] / rates["synthetic"], 3),
        "on_the_fly_ratio": round(rates["on_the_fly"] / rates["synthetic"], 3),
        "epochs_timed": None if base == "frozen" else epochs,
        "spread": {name: [round(v, 2) for v in values] for name, values in samples.items()},
    }


@click.command()
@click.option("--shared", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "datasets")
@click.option("--images", default=64, show_default=True, help="Images per measurement.")
@click.option("--epochs", default=2, show_default=True, help="Training epochs timed per measurement.")
@click.option("--workers", default=2, show_default=True, help="Decoding processes for on-the-fly loading.")
@click.option("--rounds", default=3, show_default=True, help="Interleaved rounds; the median is reported.")
@click.option("--min-seconds", default=4.0, show_default=True, help="Least time per training measurement.")
@click.option("--only", multiple=True, help="Labels of the cases to run (default: all).")
def main(
    shared: Path,
    images: int,
    epochs: int,
    workers: int,
    rounds: int,
    min_seconds: float,
    only: tuple[str, ...],
) -> None:
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        paths = _images(shared, images, Path(folder))
        for case in CASES:
            if only and case[0] not in only:
                continue
            started = time.perf_counter()
            row = _measure(case, paths, epochs, workers, rounds, min_seconds)
            row["bench_seconds"] = round(time.perf_counter() - started, 1)
            print(json.dumps(row), flush=True)
            rows.append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}",
        "images": images,
        "epochs": epochs,
        "workers": workers,
        "rounds": rounds,
        "min_seconds": min_seconds,
    }
    (RESULTS / "training_throughput.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n"
    )
    lines = [
        "# Training throughput: pipeline data path vs synthetic tensors",
        "",
        f"{meta['machine']}; {images} real flower JPEGs per case; at least {epochs} epochs and "
        f"{min_seconds:.0f} s per training measurement; median of {rounds} interleaved rounds; CPU only.",
        "Images/s. *pipeline* = the train stage's path (decoded once into memory, then batched);",
        f"*on the fly* = decoding every epoch in {workers} worker processes; ratio = path / synthetic.",
        "",
        "| model | input | mode | synthetic | pipeline | ratio | on the fly | ratio |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['input']} | {r['mode']} | {r['synthetic']} | {r['pipeline']} | "
            f"{r['pipeline_ratio']:.2f} | {r['on_the_fly']} | {r['on_the_fly_ratio']:.2f} |"
        )
    (RESULTS / "training_throughput.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "training_throughput.md").read_text())


if __name__ == "__main__":
    main()
