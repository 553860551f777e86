"""Where a frozen base's featurize seconds go, against what `visionlab plan` predicts for them.

`visionlab plan` times each network on random tensors (``plan_probe``, the fastest of a few calls)
and adds the seconds of decoding each file. On the full flowers set its probe at batches of 8,
unfolded, planned 55 s for `flowers-effnet`'s featurize, which took 346 s; it now times the stage's
batch (evaluate.batch_size) on a copy with its batch norms folded, as the stage runs. This script
takes the stage's own path apart on real photos (the shared TensorFlow flowers sample) with the
frozen EfficientNet-Lite0 and its real ImageNet weights, in one process, each configuration in turn
for ``--rounds`` rounds (the best round counts, so a busy machine slows all alike):

- ``probe``: plan's rate, ``plan_probe._rate`` on a random batch as plan now times it (the stage's
  batch, batch norms folded); ``probe before``: on a random batch of 8, unfolded, as plan did;
- ``compute b64``: the same network over pre-decoded pixels in the stage's batch (evaluate.batch_size)
  and memory layout (channels-last under bfloat16), with and without its batch norms folded;
- ``decode``: ``load_pixels`` of every file in this process, nothing else;
- ``loader``: the stage's DataLoader (evaluate.num_workers workers) iterated, no network;
- ``stage``: ``featurize_stage.compute_features`` as the stage calls it (batch norms folded into
  the convolutions, as ``_cache_base`` does; also timed unfolded);
- ``stage, workers 0``: the same, decoding in the main process.

Usage:  uv run python benchmarks/featurize_breakdown.py [--images 256] [--rounds 2]
Writes benchmarks/results/featurize_breakdown.{json,md}.
"""

from __future__ import annotations

import copy
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' helper for the shared sample photos

from tests.conftest import flower_photos  # noqa: E402
from visionlab.models import build_model  # noqa: E402
from visionlab.params import ModelParams, load_params  # noqa: E402
from visionlab.runtime.base_mode import base_mode  # noqa: E402
from visionlab.runtime.device import use_amp  # noqa: E402
from visionlab.runtime.folding import fold_batch_norms  # noqa: E402
from visionlab.runtime.inference import gather_outputs  # noqa: E402
from visionlab.runtime.loaders import image_dataset, loader  # noqa: E402
from visionlab.runtime.preprocess import load_pixels  # noqa: E402
from visionlab.training import plan_probe  # noqa: E402
from visionlab.training.featurize_stage import FeatureRun, compute_features  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import source_commit, write_result  # noqa: E402

CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
SIZE = 224


def _timed(step: Callable[[], None]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _configurations(photos: list[Path], workers: int) -> dict[str, tuple[int, Callable[[], None]]]:
    """Each configuration's image count and one call of it."""
    params = load_params(ROOT / "params.yaml")
    spec = ModelParams(arch="efficientnet_lite0", weights="imagenet", base="frozen", augmented=False)
    model = build_model(spec, len(CLASSES)).eval()
    part = base_mode(spec).frozen_part(model)
    plain = base_mode(spec).frozen_part(copy.deepcopy(model))  # as the stage ran it before channels-last
    folded_model = copy.deepcopy(model)
    fold_batch_norms(folded_model)  # as the stage does to its forward-only copy
    folded = base_mode(spec).frozen_part(folded_model)
    layout = torch.channels_last if use_amp(torch.device("cpu"), "auto") else torch.contiguous_format
    for net in (model, folded_model):  # as compute_features converts them
        net.to(memory_format=layout)
    device = torch.device("cpu")
    amp = use_amp(device, "auto")
    rows = pd.DataFrame({"path": [str(p) for p in photos], "label": [p.parent.name for p in photos]})
    batch = params.evaluate.batch_size
    pixels = torch.stack([image_dataset(rows, CLASSES, SIZE, model)[i][0] for i in range(len(rows))])
    pixels = pixels.contiguous(memory_format=layout)
    probe = torch.randn(batch, 3, SIZE, SIZE).contiguous(memory_format=layout)
    probe_before = torch.randn(8, 3, SIZE, SIZE).contiguous(memory_format=layout)

    def compute(net: Callable = part.lower) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                for start in range(0, len(pixels), batch):
                    net(pixels[start : start + batch])

        return run

    def decode() -> None:
        for photo in photos:
            load_pixels(photo, SIZE, False)

    def loaded() -> None:
        for _ in loader(image_dataset(rows, CLASSES, SIZE, model), batch, shuffle=False, workers=workers):
            pass

    def stage(n_workers: int, fold: bool = True) -> Callable[[], None]:
        staged = params.model_copy(
            update={"evaluate": params.evaluate.model_copy(update={"num_workers": n_workers})}
        )
        run = FeatureRun(SIZE, False, "auto", "cpu")
        net, cut = (folded_model, folded) if fold else (model, part)
        return lambda: compute_features(net, rows, CLASSES, run, staged, None, cut)

    def before() -> None:
        """The stage's loop as it was: contiguous batches into the unfolded network."""
        batches = loader(image_dataset(rows, CLASSES, SIZE, model), batch, shuffle=False, workers=workers)
        gather_outputs(plain.lower, batches, device, amp=amp)

    def probing(net: Callable, batch: torch.Tensor) -> Callable[[], None]:
        def probed() -> None:
            rate = plan_probe._rate(plan_probe._inference(net, batch, device, amp), len(batch), device)
            probed.rate = rate  # type: ignore[attr-defined]

        return probed

    n = len(photos)
    return {
        "probe": (0, probing(folded.lower, probe)),
        "probe before": (0, probing(part.lower, probe_before)),
        f"compute b{batch}": (n, compute()),
        f"compute b{batch}, batch norm folded": (n, compute(folded.lower)),
        "decode": (n, decode),
        f"loader, workers {workers}": (n, loaded),
        f"stage before (contiguous, not folded), workers {workers}": (n, before),
        f"stage, workers {workers}": (n, stage(workers)),
        f"stage, workers {workers}, batch norm not folded": (n, stage(workers, fold=False)),
        "stage, workers 0": (n, stage(0)),
    }


@click.command()
@click.option("--images", default=256, show_default=True)
@click.option("--rounds", default=2, show_default=True)
@click.option("--shared", type=click.Path(path_type=Path), default=ROOT.parent / "shared" / "datasets")
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "benchmarks" / "results")
def main(images: int, rounds: int, shared: Path, out: Path) -> None:
    commit = source_commit(ROOT)  # as the run starts: the tree may change while it runs
    params = load_params(ROOT / "params.yaml")
    workers = params.evaluate.num_workers
    with tempfile.TemporaryDirectory() as scratch:
        photos = flower_photos(Path(scratch) / "photos", images, shared)
        configs = _configurations(photos, workers)
        best: dict[str, float] = {}
        probe_rates: dict[str, list[float]] = {"probe": [], "probe before": []}
        for _ in range(rounds):
            for name, (_, step) in configs.items():
                seconds = _timed(step)
                best[name] = min(best.get(name, float("inf")), seconds)
                if name in probe_rates:
                    probe_rates[name].append(step.rate)  # type: ignore[attr-defined]
    rates = {name: configs[name][0] / best[name] for name in best if configs[name][0]}
    rates.update({name: max(found) for name, found in probe_rates.items()})
    stage_rate = rates[f"stage, workers {workers}"]
    decode_per_image = best["decode"] / len(photos)
    planned = 1 / (1 / rates["probe"] + decode_per_image)  # what plan's estimate assumes, per image
    result = {
        "commit": commit,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "load_average_at_start": os.getloadavg()[0],
        "images": len(photos),
        "rounds": rounds,
        "image_size": SIZE,
        "batch_size": params.evaluate.batch_size,
        "workers": workers,
        "images_per_second": {name: round(rate, 1) for name, rate in rates.items()},
        "decode_ms_per_image": round(decode_per_image * 1000, 2),
        "planned_images_per_second": round(planned, 1),
        "planned_over_stage": round(planned / stage_rate, 2),
    }
    write_result(out, "featurize_breakdown", result, _markdown(result))


def _markdown(result: dict) -> str:
    lines = [
        "# Featurize of a frozen EfficientNet-Lite0, taken apart",
        "",
        f"{result['images']} shared TensorFlow flowers photos at {result['image_size']} px, batch "
        f"{result['batch_size']}, best of {result['rounds']} rounds; load average at the start "
        f"{result['load_average_at_start']:.2f} on {result['machine']['cpus']} CPUs; "
        f"commit {result['commit'][:12]}.",
        "",
        "| configuration | images/s |",
        "|---|---:|",
        *(f"| {name} | {rate:,.1f} |" for name, rate in result["images_per_second"].items()),
        "",
        f"Decoding: {result['decode_ms_per_image']} ms an image. Plan's assumption (probe rate plus "
        f"decoding): {result['planned_images_per_second']:,.1f} images/s, "
        f"{result['planned_over_stage']}x the stage's rate.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
