"""Featurize and evaluate as the stages run them, at ``--batch`` sizes (64 and 32), each set beside
the shipped ``evaluate.batch_size`` (64 when it was first run; 32 since, from its result).

``benchmarks/probe_batch.py`` found the large networks' inference 1.2-1.7x faster in images/s at
half the batch on this CPU, on random tensors. Before the default changed, this measured what the
stages themselves do with real photos (the shared TensorFlow flowers sample; decoding, the
DataLoader's workers and the activation cache included):

- ``featurize``: ``featurize_stage.compute_features`` as ``_cache_base`` calls it: the experiment's
  network with its real ImageNet weights and its batch norms folded, at its image side and
  precision; below the cut for a fine-tuned base (then the cached top's pooled features too);
- ``evaluate``: the whole folded network over the same photos, as ``scoring.score_splits`` scores
  the test split (which nothing caches).

Each experiment's configurations alternate for ``--rounds`` rounds; the best round counts, so a
busy machine slows all alike. Usage:
``uv run python benchmarks/stage_batch.py [--images 256] [--rounds 3] [--batch 32 --batch 64]``.
Writes benchmarks/results/stage_batch.{json,md}.
"""

from __future__ import annotations

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
sys.path.insert(0, str(ROOT))  # benchmarks' helpers and the tests' one for the shared sample photos

from benchmarks.probe_batch import with_inference_batch  # noqa: E402
from benchmarks.provenance import source_commit, write_result  # noqa: E402
from tests.conftest import flower_photos  # noqa: E402
from visionlab.models import build_model  # noqa: E402
from visionlab.params import Params, load_params  # noqa: E402
from visionlab.runtime.base_mode import base_mode  # noqa: E402
from visionlab.runtime.device import use_amp  # noqa: E402
from visionlab.runtime.folding import fold_batch_norms  # noqa: E402
from visionlab.runtime.inference import gather_outputs  # noqa: E402
from visionlab.runtime.loaders import image_dataset, loader  # noqa: E402
from visionlab.training.featurize_stage import FeatureRun, compute_features  # noqa: E402

EXPERIMENTS = ("flowers-best", "flowers-best-lite2", "cifar-best")
CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


def _steps(params: Params, experiment: str, rows: pd.DataFrame, batches: list[int]) -> dict:
    """(stage, batch) -> one call of that stage's work on ``rows``, for one experiment."""
    spec = params.model_of(experiment)
    size, grey = params.image_size_of(experiment), params.grayscale_of(experiment)
    model = build_model(spec, len(CLASSES), grayscale=grey)
    fold_batch_norms(model.eval())  # as featurize folds its forward-only copy, and evaluate scores
    part = base_mode(spec).frozen_part(model)
    dtype = getattr(torch, spec.activation_cache) if part.upper is not None else torch.float32
    recipe_amp = params.recipe_of(experiment).amp
    run = FeatureRun(size, grey, recipe_amp, "cpu")
    device = torch.device("cpu")
    amp = use_amp(device, recipe_amp)
    steps: dict[tuple[str, int], Callable[[], None]] = {}
    for batch in batches:
        staged = with_inference_batch(params, batch)

        def featurize(staged: Params = staged) -> None:
            compute_features(model, rows, CLASSES, run, staged, None, part, dtype)

        def evaluate(batch: int = batch) -> None:
            dataset = image_dataset(rows, CLASSES, size, model, grey)
            batches_ = loader(dataset, batch, shuffle=False, workers=params.evaluate.num_workers)
            gather_outputs(model, batches_, device, amp=amp, channels_last=amp)

        steps[("featurize", batch)] = featurize
        steps[("evaluate", batch)] = evaluate
    return steps


def _timed(step: Callable[[], None]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


@click.command()
@click.option("--images", default=256, show_default=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--batch", "batches", multiple=True, type=int, default=(64, 32), show_default=True)
@click.option("--experiment", "experiments", multiple=True, default=EXPERIMENTS, show_default=True)
@click.option("--shared", type=click.Path(path_type=Path), default=ROOT.parent / "shared" / "datasets")
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "benchmarks" / "results")
def main(
    images: int, rounds: int, batches: tuple[int, ...], experiments: tuple[str, ...], shared: Path, out: Path
) -> None:
    commit = source_commit(ROOT)  # as the run starts: the tree may change while it runs
    load = os.getloadavg()[0]
    params = load_params(ROOT / "params.yaml")
    measured: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch:
        photos = flower_photos(Path(scratch) / "photos", images, shared)
        rows = pd.DataFrame({"path": [str(p) for p in photos], "label": [p.parent.name for p in photos]})
        for experiment in experiments:
            steps = _steps(params, experiment, rows, list(batches))
            for step in steps.values():  # warm-up: weight layouts, thread pools, first-call costs
                step()
            best: dict[tuple[str, int], float] = {}
            for round_ in range(rounds):
                order = list(steps) if round_ % 2 == 0 else list(reversed(steps))
                for key in order:
                    best[key] = min(best.get(key, float("inf")), _timed(steps[key]))
            for (stage, batch), seconds in best.items():
                measured.append(
                    {
                        "experiment": experiment,
                        "stage": stage,
                        "batch_size": batch,
                        "image_size": params.image_size_of(experiment),
                        "seconds": round(seconds, 3),
                        "images_per_second": round(len(photos) / seconds, 1),
                    }
                )
    result = {
        "commit": commit,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": load,
        "images": len(photos),
        "rounds": rounds,
        "shipped_batch_size": params.evaluate.batch_size,
        "workers": params.evaluate.num_workers,
        "rows": measured,
    }
    write_result(out, "stage_batch", result, _markdown(result))


def _markdown(result: dict) -> str:
    shipped = result["shipped_batch_size"]
    rate = {(r["experiment"], r["stage"], r["batch_size"]): r["images_per_second"] for r in result["rows"]}
    others = sorted({r["batch_size"] for r in result["rows"]} - {shipped})
    header = " | ".join(f"b{b} img/s | b{b} / b{shipped}" for b in others)
    lines = [
        "# Featurize and evaluate at another inference batch, as the stages run them",
        "",
        f"Commit `{result['commit'][:12]}`, {result['torch_threads']} torch threads, "
        f"{result['workers']} loader workers, load average at the start "
        f"{result['load_average_at_start']:.2f} on {result['machine']['cpus']} CPUs. "
        f"{result['images']} shared TensorFlow flowers photos "
        f"(decoded each call), real ImageNet weights, batch norms folded; best of {result['rounds']} "
        f"rounds, alternating order. Shipped `evaluate.batch_size`: {shipped}.",
        "",
        f"| experiment | side | stage | b{shipped} img/s | {header} |",
        "|---|---:|---|---:|" + "---:|---:|" * len(others),
    ]
    seen = []
    for r in result["rows"]:
        key = (r["experiment"], r["stage"])
        if key in seen:
            continue
        seen.append(key)
        base = rate[(*key, shipped)]
        cells = " | ".join(f"{rate[(*key, b)]:,.1f} | {rate[(*key, b)] / base:.2f}" for b in others)
        lines.append(f"| `{key[0]}` | {r['image_size']} | {key[1]} | {base:,.1f} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
