"""bfloat16 autocast against float32 for each network the pipeline trains whole on images.

``train.amp: auto`` turns on bfloat16 autocast (with channels-last) wherever the CPU computes
bfloat16 natively. cpu_bf16.py measured that choice for EfficientNet-Lite0 at 224 px (faster); the
studies' own CNNs are far smaller and CIFAR's run at 32 px, where the conversions around each
layer may cost more than the arithmetic saves. This times, for every shipped experiment whose
whole network trains on images (``base: trainable``), one training step and one inference pass at
the recipe's batch size and the model's image size, in both precisions, on synthetic batches,
as the train and evaluate stages run them (channels-last with autocast).

Rounds interleave the two precisions; each figure is the median of a round's timed steps, and
the best round counts. Run it on an idle machine: a busy one slows bfloat16 far more than float32
(beside a training run, cifar_inception's bfloat16 step took 2.9 s against float32's 0.4-0.6 s).

Usage:  uv run python benchmarks/amp_by_net.py [--rounds 2] [--seconds 2]
Writes benchmarks/results/amp_by_net.{json,md}.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
import torch
from torch import nn

from visionlab.models import build_model
from visionlab.params import load_params
from visionlab.runtime.device import cpu_supports_bf16
from visionlab.training import plan_counts, planning

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import source_commit, write_result

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
WARMUP = 2  # full steps before timing: layouts, thread pools, the optimiser's state


def nets(params) -> dict[tuple, list[str]]:
    """(arch, image size, batch size, classes, grey) -> the experiments that train that net whole."""
    found: dict[tuple, list[str]] = {}
    for name in params.experiments:
        spec = params.model_of(name)
        if spec.base != "trainable" or planning.missing_weights(params, name):
            continue  # not trained whole, or cannot run here (ImageNet weights not available offline)
        counts = plan_counts.image_counts(params, params.experiment(name).dataset, REPO)
        classes = counts.classes if counts else 5
        key = (
            spec.arch,
            params.image_size_of(name),
            params.recipe_of(name).batch_size,
            classes,
            params.grayscale_of(name),
        )
        found.setdefault(key, []).append(name)
    return found


def _timed(step: Callable[[], None], seconds: float) -> float:
    """Median seconds of ``step`` over at least 3 calls and ``seconds`` of them."""
    for _ in range(WARMUP):
        step()
    times: list[float] = []
    while len(times) < 3 or sum(times) < seconds:
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
        if len(times) >= 50:
            break
    return statistics.median(times)


def _steps(params, name: str, key: tuple, amp: bool) -> tuple[Callable[[], None], Callable[[], None]]:
    """A training step and an inference pass of ``name``'s net, as ``key`` sizes them."""
    _, size, batch_size, classes, grey = key
    spec = params.model_of(name).model_copy(update={"weights": "none"})
    model = build_model(spec, classes, load_weights=False, grayscale=grey)
    if amp:
        model = model.to(memory_format=torch.channels_last)
    batch = torch.randn(batch_size, model.in_channels, size, size)
    if amp:
        batch = batch.contiguous(memory_format=torch.channels_last)
    targets = torch.arange(batch_size) % classes
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)

    def train() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = nn.functional.cross_entropy(model(batch).float(), targets)
        loss.backward()
        optimizer.step()

    def infer() -> None:
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            model(batch)

    return train, infer


def measure(params, rounds: int, seconds: float) -> list[dict]:
    rows = []
    for key, experiments in nets(params).items():
        best: dict[str, float] = {}
        for _ in range(rounds):
            for amp in (False, True):
                train, infer = _steps(params, experiments[0], key, amp)
                for part, step in (("train", train), ("infer", infer)):
                    label = f"{part}_{'bf16' if amp else 'fp32'}"
                    best[label] = min(best.get(label, float("inf")), _timed(step, seconds))
        arch, size, batch_size, classes, grey = key
        row = {
            "arch": arch,
            "image_size": size,
            "batch_size": batch_size,
            "classes": classes,
            "grayscale": grey,
            "experiments": experiments,
        }
        for label, value in best.items():
            row[f"{label}_images_per_s"] = round(batch_size / value, 1)
        row["train_bf16_speedup"] = round(best["train_fp32"] / best["train_bf16"], 2)
        row["infer_bf16_speedup"] = round(best["infer_fp32"] / best["infer_bf16"], 2)
        rows.append(row)
        print(row, flush=True)
    return rows


def render(rows: list[dict], meta: dict) -> str:
    lines = [
        "# bfloat16 autocast against float32, per network trained whole on images",
        "",
        f"{meta['machine']}, {meta['threads']} torch threads, torch {meta['torch']}, native CPU bfloat16: "
        f"{meta['native_bf16']}; load average at the start {meta['load_average']:.2f}; commit "
        f"{meta['source_commit'][:12]}. Synthetic batches at each recipe's batch size and the model's image "
        "size; a training step (Adam) and an inference pass; median step of the best of "
        f"{meta['rounds']} interleaved rounds. speedup = float32 seconds / bfloat16 seconds "
        "(above 1: bfloat16 is faster; `train.amp: auto` picks bfloat16 on this CPU).",
        "",
        "| net | px | batch | train fp32 img/s | train bf16 img/s | train speedup | infer fp32 img/s "
        "| infer bf16 img/s | infer speedup | experiments |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['image_size']} | {r['batch_size']} | {r['train_fp32_images_per_s']:,.1f} | "
            f"{r['train_bf16_images_per_s']:,.1f} | {r['train_bf16_speedup']:.2f} | "
            f"{r['infer_fp32_images_per_s']:,.1f} | {r['infer_bf16_images_per_s']:,.1f} | "
            f"{r['infer_bf16_speedup']:.2f} | {', '.join(r['experiments'])} |"
        )
    slower = [r["arch"] for r in rows if r["train_bf16_speedup"] < 1]
    lines += [
        "",
        f"bfloat16 trains slower than float32 for {len(slower)} of {len(rows)} nets"
        + (f": {', '.join(slower)}." if slower else "."),
        "",
    ]
    return "\n".join(lines)


@click.command()
@click.option("--rounds", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--seconds", default=2.0, show_default=True, help="timed seconds per step and round, at least")
def main(rounds: int, seconds: float) -> None:
    meta = {
        "source_commit": source_commit(REPO),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "native_bf16": cpu_supports_bf16(),
        "load_average": os.getloadavg()[0],
        "rounds": rounds,
    }
    rows = measure(load_params(REPO / "params.yaml"), rounds, seconds)
    write_result(RESULTS, "amp_by_net", {"meta": meta, "rows": rows}, render(rows, meta))


if __name__ == "__main__":
    main()
