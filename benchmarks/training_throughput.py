"""Training throughput of every model family: the data path a user gets vs synthetic tensors.

For each architecture, side by side in one run on this machine, images/s of the real fit loop fed:
  * synthetic: random tensors of the input shape, already in memory (the model's own speed);
  * preloaded: the train stage's path when the images fit ``train.preload_max_gb`` (ImageDataset
    over real JPEG files from the shared flowers sample, decoded, resized and normalised), timed
    after the images were decoded into memory. Both read tensors from memory, so a ratio near 1
    is built in: this column only shows the batching and normalising costs nothing;
  * user, preloaded: the same with the one-off decoding counted, as a run of ``--run-epochs``
    epochs pays it: run_epochs * N / (preload seconds + run_epochs * N / preloaded rate);
  * on the fly: what a data set over the preload limit gets: decoding every image every epoch
    in ``--workers`` processes.
The honest figure is the user's: "user, preloaded" for data that fits, "on the fly" otherwise.
Frozen bases train on cached features, so for them the featurize pass (backbone inference) is
timed instead; it reads each image once, so its "preloaded" time includes the decoding.
ImageNet weights are not needed to time a network: all run with ``weights: none`` (same graph,
same cost).

Usage:  uv run python benchmarks/training_throughput.py [--models handmade_cnn,cifar_residual]
        [--shared ../shared/datasets] [--images 64,512] [--run-epochs 10]
Writes benchmarks/results/training_throughput.{json,md}.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import click
import torch
from torch.utils.data import DataLoader, TensorDataset

from visionlab.models import build_model
from visionlab.params import ModelParams, TrainParams
from visionlab.runtime.inference import gather_outputs
from visionlab.runtime.loaders import ImageDataset, loader
from visionlab.training.loop import fit
from visionlab.training.phase import RunHooks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import source_commit, write_result

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
    bench = RunHooks(desc="bench")
    result = fit(model, batches, DataLoader(empty), settings, torch.device("cpu"), hooks=bench)
    return result.samples_per_second


def _time_featurize(model, dataset, batch_size: int, workers: int) -> float:
    batches = loader(dataset, batch_size, shuffle=False, workers=workers)
    started = time.perf_counter()
    gather_outputs(model.forward_features, batches, torch.device("cpu"))
    return len(dataset) / (time.perf_counter() - started)


def _measure(
    case, paths: list[str], epochs: int, workers: int, rounds: int, min_seconds: float, run_epochs: int
) -> dict:
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
        # The one-off decoding a training run pays before its first epoch, timed every round.
        sources["preload"] = lambda: len(paths) / dataset(True).preload_seconds
    # Interleaved rounds, median per source: a slow spell of the shared machine or a cold cache
    # hits every source alike instead of whichever happened to run first.
    samples: dict[str, list[float]] = {name: [] for name in sources}
    for _ in range(rounds):
        for name, measure in sources.items():
            samples[name].append(measure())
    rates = {name: statistics.median(values) for name, values in samples.items()}
    if base == "frozen":
        user = rates["pipeline"]  # featurize reads each image once: its decoding is already in
    else:
        images = run_epochs * len(paths)
        user = images / (len(paths) / rates["preload"] + images / rates["pipeline"])
    return {
        "model": label,
        "input": f"{size}x{size}x{channels}",
        "mode": "featurize (frozen base)" if base == "frozen" else "train",
        **{k: round(v, 2) for k, v in rates.items()},
        "user_preloaded": round(user, 2),
        "pipeline_ratio": round(rates["pipeline"] / rates["synthetic"], 3),
        "user_preloaded_ratio": round(user / rates["synthetic"], 3),
        "on_the_fly_ratio": round(rates["on_the_fly"] / rates["synthetic"], 3),
        "epochs_timed": None if base == "frozen" else epochs,
        "run_epochs": None if base == "frozen" else run_epochs,
        "spread": {name: [round(v, 2) for v in values] for name, values in samples.items()},
    }


@click.command()
@click.option("--shared", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "datasets")
@click.option(
    "--images",
    default="64",
    show_default=True,
    help="Images per epoch of a measurement; several (64,512) are measured side by side.",
)
@click.option("--epochs", default=2, show_default=True, help="Training epochs timed per measurement.")
@click.option("--workers", default=2, show_default=True, help="Decoding processes for on-the-fly loading.")
@click.option("--rounds", default=3, show_default=True, help="Interleaved rounds; the median is reported.")
@click.option("--min-seconds", default=4.0, show_default=True, help="Least time per training measurement.")
@click.option(
    "--run-epochs", default=10, show_default=True, help="Epochs of the run the preload is spread over."
)
@click.option(
    "--models",
    default="",
    help="Comma-separated archs or case labels to run, e.g. handmade_cnn,cifar_residual (default: all).",
)
def main(
    shared: Path,
    images: str,
    epochs: int,
    workers: int,
    rounds: int,
    min_seconds: float,
    run_epochs: int,
    models: str,
) -> None:
    commit = source_commit(REPO)  # as the run starts: the tree may change while it runs
    wanted = {name.strip() for name in models.split(",") if name.strip()}
    known = {case[0] for case in CASES} | {case[1] for case in CASES}
    if wanted - known:
        raise click.BadParameter(
            f"unknown: {', '.join(sorted(wanted - known))}; known: {', '.join(sorted(known))}",
            param_hint="--models",
        )
    counts = _counts(images)
    torch.manual_seed(0)
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        paths = _images(shared, max(counts), Path(folder))
        for case in CASES:
            if wanted and not wanted & {case[0], case[1]}:
                continue
            for count in counts:  # side by side: each case at every epoch size before the next case
                started = time.perf_counter()
                row = {
                    "images": count,
                    **_measure(case, paths[:count], epochs, workers, rounds, min_seconds, run_epochs),
                }
                row["bench_seconds"] = round(time.perf_counter() - started, 1)
                print(json.dumps(row), flush=True)
                rows.append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}",
        "images": counts if len(counts) > 1 else counts[0],
        "epochs": epochs,
        "workers": workers,
        "rounds": rounds,
        "min_seconds": min_seconds,
        "run_epochs": run_epochs,
        # Other work on the machine slows every source, not always alike: say how busy it was.
        "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "cpus": os.cpu_count(),
        "commit": commit,
    }
    write_result(RESULTS, "training_throughput", {"meta": meta, "rows": rows}, _render(meta, rows, counts))


def _counts(images: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in images.split(",") if part.strip()})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise click.BadParameter(f"{images!r}: give image counts, e.g. 64 or 64,512", param_hint="--images")
    return counts


def _render(meta: dict, rows: list[dict], counts: list[int]) -> str:
    """The result's markdown: what was measured, the headline per epoch size, a row per measurement."""
    sizes = " and ".join(str(count) for count in counts)
    lines = [
        "# Training throughput: the data path a user gets vs synthetic tensors",
        "",
        f"{meta['machine']}; {sizes} real flower JPEGs per epoch; at least {meta['epochs']} epochs and "
        f"{meta['min_seconds']:.0f} s per training measurement; median of {meta['rounds']} interleaved "
        "rounds; CPU only.",
        "Images/s. *synthetic* = random tensors in memory (the model's own speed); *user, preloaded* =",
        "the train stage's path for data under `train.preload_max_gb`, its one-off decoding spread over a "
        f"{meta['run_epochs']}-epoch run;",
        f"*on the fly* = data over the limit, decoded every epoch in {meta['workers']} worker processes; "
        "*in memory* = the preloaded path",
        "without its decoding (both sides read memory: ~1 by construction). Ratios are to synthetic.",
        f"Load average (1 min) on the {meta['cpus']} CPUs: {meta['load_average_1min'][0]} at the start, "
        f"{meta['load_average_1min'][1]} at the end; commit {meta['commit'][:12]}.",
        "",
    ]
    for count in counts:
        trained = [r for r in rows if r["mode"] == "train" and r["images"] == count]
        if not trained:
            continue
        user = [r["user_preloaded_ratio"] for r in trained]
        fly = [r["on_the_fly_ratio"] for r in trained]
        lines += [
            f"**Headline (training, {len(trained)} model families, {count} images an epoch):** a user "
            f"keeps {min(user):.2f}-{max(user):.2f} of the synthetic speed when the images fit in memory "
            f"(decoding counted) and {min(fly):.2f}-{max(fly):.2f} when they are decoded on the fly.",
            "",
        ]
    lines += [
        "| model | input | mode | images an epoch | synthetic | user, preloaded | ratio | on the fly | ratio "
        "| in memory | ratio | decode img/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['input']} | {r['mode']} | {r['images']} | {r['synthetic']} | "
            f"{r['user_preloaded']} | {r['user_preloaded_ratio']:.2f} | {r['on_the_fly']} | "
            f"{r['on_the_fly_ratio']:.2f} | {r['pipeline']} | {r['pipeline_ratio']:.2f} | "
            f"{r.get('preload', '')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
