"""Data-parallel training throughput: the real train stage with 1 process vs N gloo processes.

Each case builds a throw-away project of generated 32x32 images (two colour classes), runs the real
prepare stage, then ``python stages/train.py`` with ``train.nproc_per_node`` = 1 and = N, on the
CPU. It reports the stage's own figure, ``train_images_per_second`` from ``training.json`` (images of
every rank per second of rank 0's training loop, validation excluded), and the stage's wall time
(process start, rendezvous, imports, data loading and validation included). Cases alternate
1, N, 1, N, ... so a change in the machine's load hits both alike; the median is reported.

Usage:  uv run python benchmarks/ddp_throughput.py [--processes 2] [--images 512] [--rounds 2]
Writes benchmarks/results/ddp_throughput.{json,md}.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch
import yaml
from PIL import Image

from visionlab.data.prepare import prepare_dataset
from visionlab.params import parse_params

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
STAGE = REPO / "stages" / "train.py"


def _params(nproc: int, epochs: int, batch_size: int) -> dict:
    return {
        "datasets": {"toy": {"source": {"url": "http://127.0.0.1:9/toy.tgz"}, "root": "toy"}},
        "models": {
            "net": {"arch": "cifar_inception", "weights": "none", "base": "trainable", "augmented": False}
        },
        "recipes": {"default": {}},
        "experiments": {"toy-net": {"dataset": "toy", "model": "net", "recipe": "default"}},
        "train": {
            "image_size": 32,
            "epochs": epochs,
            "batch_size": batch_size,
            "num_workers": 0,
            "early_stopping_patience": 0,
            "device": "cpu",
            "resume": False,
            "nproc_per_node": nproc,
        },
    }


def _project(root: Path, images: int, params: dict) -> None:
    rng = np.random.default_rng(0)
    for label, channel in (("red", 0), ("blue", 2)):
        folder = root / "data/raw/toy/toy" / label
        folder.mkdir(parents=True)
        for i in range(images // 2):
            pixels = rng.integers(0, 110, (32, 32, 3), dtype=np.uint8)
            pixels[..., channel] += 120
            Image.fromarray(pixels).save(folder / f"{i}.png")
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with contextlib.chdir(root):  # prepare reads and writes relative to the project root
        prepare_dataset(parse_params(params), "toy")


def _run(root: Path, nproc: int, epochs: int, batch_size: int) -> dict:
    (root / "params.yaml").write_text(yaml.safe_dump(_params(nproc, epochs, batch_size)))
    env = {k: v for k, v in os.environ.items() if k not in ("VISIONLAB_PROJECT_ROOT", "MLFLOW_TRACKING_URI")}
    env["PYTHONPATH"] = str(REPO / "src")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(STAGE), "--experiment", "toy-net"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the train stage failed with {nproc} process(es):\n{done.stderr[-3000:]}")
    summary = json.loads((root / "data/models/toy-net/summary.json").read_text())
    assert summary["processes"] == nproc
    timing = json.loads((root / "results/toy-net/training.json").read_text())
    return {
        "processes": nproc,
        "images_per_second": timing["train_images_per_second"],
        "train_seconds": timing["train_seconds"],
        "stage_wall_seconds": round(wall, 2),
        "epochs_run": summary["epochs_run"],
    }


@click.command()
@click.option("--processes", default=2, show_default=True, help="N, compared with 1 process")
@click.option("--images", default=512, show_default=True, help="generated images (70% train)")
@click.option("--epochs", default=3, show_default=True)
@click.option("--batch-size", default=32, show_default=True, help="per process, as train.batch_size")
@click.option("--rounds", default=2, show_default=True)
def main(processes: int, images: int, epochs: int, batch_size: int, rounds: int) -> None:
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ddp-bench-") as scratch:
        root = Path(scratch)
        _project(root, images, _params(1, epochs, batch_size))
        for _ in range(rounds):
            for nproc in (1, processes):
                row = _run(root, nproc, epochs, batch_size)
                print(json.dumps(row), flush=True)
                runs.append(row)

    def median(nproc: int, key: str) -> float:
        return round(statistics.median(r[key] for r in runs if r["processes"] == nproc), 2)

    one, many = median(1, "images_per_second"), median(processes, "images_per_second")
    summary = {
        "processes": processes,
        "images_per_second_1": one,
        f"images_per_second_{processes}": many,
        "ratio": round(many / one, 3) if one else None,
        "stage_wall_seconds_1": median(1, "stage_wall_seconds"),
        f"stage_wall_seconds_{processes}": median(processes, "stage_wall_seconds"),
    }
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, CPU (gloo)",
        "note": "shared machine: other jobs ran beside the benchmark, so absolute figures are noisy",
        "model": "cifar_inception, 32x32x3 inputs, two classes",
        "images": images,
        "epochs": epochs,
        "batch_size_per_process": batch_size,
        "rounds": rounds,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ddp_throughput.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=2) + "\n"
    )
    lines = [
        f"# Data-parallel training throughput: 1 vs {processes} processes",
        "",
        f"{meta['machine']}; {meta['model']}; {images} generated images ({epochs} epochs, batch "
        f"{batch_size} per process); the real train stage (`python stages/train.py`), median of "
        f"{rounds} interleaved rounds.",
        f"**{meta['note'].capitalize()}.**",
        "",
        "Images/s = every rank's training images per second of rank 0's training loop (validation",
        "excluded), from the stage's `results/<experiment>/training.json`;",
        "wall = the whole stage, process starts included.",
        "",
        "| processes | images/s | stage wall (s) |",
        "|---:|---:|---:|",
        f"| 1 | {one} | {summary['stage_wall_seconds_1']} |",
        f"| {processes} | {many} | {summary[f'stage_wall_seconds_{processes}']} |",
        "",
        f"Ratio {processes} / 1 processes: **{summary['ratio']}**.",
    ]
    (RESULTS / "ddp_throughput.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "ddp_throughput.md").read_text())


if __name__ == "__main__":
    main()
