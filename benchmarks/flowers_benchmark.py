"""Benchmark of the flowers pipeline on the shared sample of flower_photos.tgz (1,000 images).

Measures, side by side in one run on this machine:
  1. prepare throughput (images/s, full decode of every file) and augment throughput (copies/s);
  2. frozen EfficientNet-Lite0 head training for N epochs: on cached features (featurize once,
     then train the head: what the pipeline's featurize + train stages do) against a baseline
     the pipeline never runs: the whole model trained with its base frozen, so every batch goes
     through the frozen backbone (kept in eval mode) every epoch, its JPEGs decoded again each
     epoch in 2 loader processes (no preloading). It is the cost featurize saves, not a rival;
  3. the real `dvc repro` on the whole sample: test accuracy of both models and stage times;
  4. the wall time of a no-op `dvc repro`.

Cost on 2 CPU cores: parts 1 and 2 take about 2 minutes on an idle machine, part 3 about 20
(``--skip-pipeline`` leaves parts 3 and 4 out).

Usage:  uv run python benchmarks/flowers_benchmark.py [--shared ../shared/datasets]
Writes benchmarks/results/flowers.json and flowers.md.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import torch
import yaml

from visionlab.paths import copy_project

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import source_commit, write_result

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work"
RESULTS = REPO / "benchmarks" / "results"


def _project(shared: Path, name: str, overrides: dict) -> Path:
    project = WORK / name
    shutil.rmtree(project, ignore_errors=True)
    copy_project(REPO, project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["download"]["mirror"] = str(shared)
    params["datasets"] = {"flowers": params["datasets"]["flowers"]}
    params["experiments"] = {name: params["experiments"][name] for name in ("flowers-cnn", "flowers-effnet")}
    for section, values in overrides.items():
        params[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = _env(project)
    for args in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "b"],
    ):
        subprocess.run(args, cwd=project, check=True, env=env)
    return project


def _env(project: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(project / "src")  # the copy's code, not the live checkout's
    return env


def _timed(project: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=project, env=_env(project), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout + result.stderr


def data_throughput(shared: Path) -> dict:
    """Prepare and augment in-process, on the whole sample."""
    from visionlab.data.augment_stage import augment_dataset
    from visionlab.data.download_stage import download_dataset
    from visionlab.data.prepare_stage import prepare_dataset
    from visionlab.params import load_params

    project = _project(shared, "data", {"augment": {"factor": 5, "image_size": 224}})
    os.chdir(project)
    params = load_params()
    download_dataset(params, "flowers", progress=False)
    start = time.perf_counter()
    prepare_dataset(params, "flowers")
    prepare_s = time.perf_counter() - start
    report = json.loads(Path("data/prepared/flowers/report.json").read_text())
    start = time.perf_counter()
    augment_dataset(params, "flowers")
    augment_s = time.perf_counter() - start
    summary = json.loads(Path("data/augmented/flowers/summary.json").read_text())
    os.chdir(REPO)
    return {
        "files_checked": report["files_seen"],
        "prepare_seconds": round(prepare_s, 2),
        "prepare_images_per_s": round(report["files_seen"] / prepare_s, 1),
        "augmented_copies": summary["augmented_copies"],
        "augment_seconds": round(augment_s, 2),
        "augment_copies_per_s": round(summary["augmented_copies"] / augment_s, 1),
    }


def head_training(shared: Path, images: int, epochs: int, size: int) -> dict:
    """Cached features + head against the frozen backbone in the loop, same images and epochs."""
    import pandas as pd
    from torch.utils.data import TensorDataset

    from visionlab.models import build_model
    from visionlab.params import ModelParams, TrainParams
    from visionlab.runtime.inference import gather_outputs
    from visionlab.runtime.loaders import ImageDataset, loader
    from visionlab.training.loop import fit

    manifest = pd.read_csv(WORK / "data/data/prepared/flowers/manifest.csv")
    classes = sorted(manifest.label.unique())
    train = manifest[manifest.split == "train"].groupby("label").head(images // len(classes))
    val = manifest[manifest.split == "val"].groupby("label").head(10)
    paths = lambda rows: [str(WORK / "data" / p) for p in rows.path]  # noqa: E731
    labels = lambda rows: [classes.index(x) for x in rows.label]  # noqa: E731
    spec = ModelParams(arch="efficientnet_lite0", weights="imagenet", base="frozen", augmented=False)
    settings = TrainParams(epochs=epochs, batch_size=32, early_stopping_patience=epochs, num_workers=0)
    device = torch.device("cpu")

    def datasets(model):
        return (
            ImageDataset(paths(train), labels(train), size, model.mean, model.std),
            ImageDataset(paths(val), labels(val), size, model.mean, model.std),
        )

    torch.manual_seed(0)
    model = build_model(spec, len(classes))
    train_set, val_set = datasets(model)
    start = time.perf_counter()
    model.eval()
    train_x, train_y = gather_outputs(model.forward_features, loader(train_set, 32, False, 2), device)
    val_x, val_y = gather_outputs(model.forward_features, loader(val_set, 32, False, 2), device)
    featurize_s = time.perf_counter() - start
    start = time.perf_counter()
    cached = fit(
        model.head,
        loader(TensorDataset(train_x, train_y), 32, True, 0),
        loader(TensorDataset(val_x, val_y), 32, False, 0),
        settings,
        device,
    )
    head_s = time.perf_counter() - start

    torch.manual_seed(0)
    model = build_model(spec, len(classes))
    train_set, val_set = datasets(model)
    start = time.perf_counter()
    uncached = fit(model, loader(train_set, 32, True, 2), loader(val_set, 32, False, 2), settings, device)
    full_s = time.perf_counter() - start
    return {
        "train_images": len(train),
        "val_images": len(val),
        "epochs": epochs,
        "image_size": size,
        "cached_featurize_seconds": round(featurize_s, 2),
        "cached_head_training_seconds": round(head_s, 2),
        "cached_total_seconds": round(featurize_s + head_s, 2),
        "backbone_every_epoch_seconds": round(full_s, 2),
        "speedup_total": round(full_s / (featurize_s + head_s), 1),
        "speedup_retune_head": round(full_s / head_s, 1),
        "final_val_accuracy_cached": round(cached.history[-1]["val_accuracy"], 4),
        "final_val_accuracy_backbone_every_epoch": round(uncached.history[-1]["val_accuracy"], 4),
    }


def pipeline(shared: Path, overrides: dict) -> dict:
    project = _project(shared, "pipeline", overrides)
    dvc = (sys.executable, "-m", "dvc")
    full_s, _ = _timed(project, *dvc, "repro")
    noop_s, noop_out = _timed(project, *dvc, "repro")
    assert "Running stage" not in noop_out
    metrics = {
        name: json.loads((project / f"results/{name}/metrics.json").read_text())
        for name in ("flowers-cnn", "flowers-effnet")
    }
    summaries = {
        name: json.loads((project / f"data/models/{name}/summary.json").read_text())
        # wall-clock figures: beside the model, so model.pt stays byte-identical across reruns
        | json.loads((project / f"results/{name}/training.json").read_text())
        for name in metrics
    }
    return {
        "settings": overrides,
        "repro_seconds": round(full_s, 1),
        "noop_repro_seconds": round(noop_s, 2),
        "test_accuracy": {n: round(m["test"]["accuracy"], 4) for n, m in metrics.items()},
        "test_macro_f1": {n: round(m["test"]["macro_f1"], 4) for n, m in metrics.items()},
        "test_images": metrics["flowers-cnn"]["test"]["images"],
        "epochs_run": {n: s["epochs_run"] for n, s in summaries.items()},
        "train_images_per_second": {n: s["train_images_per_second"] for n, s in summaries.items()},
    }


@click.command()
@click.option("--shared", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "datasets")
@click.option(
    "--head-images", default=150, show_default=True, help="Training images for the head comparison."
)
@click.option("--epochs", default=10, show_default=True)
@click.option("--image-size", default=224, show_default=True)
@click.option("--pipeline-epochs", default=15, show_default=True)
@click.option("--pipeline-size", default=160, show_default=True)
@click.option("--pipeline-factor", default=3, show_default=True)
@click.option("--skip-pipeline", is_flag=True)
def main(
    shared, head_images, epochs, image_size, pipeline_epochs, pipeline_size, pipeline_factor, skip_pipeline
):
    shared = shared.resolve()
    results: dict = {
        "commit": source_commit(REPO),  # as the run starts: the tree may change while it runs
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()},
        "sample": "flower_photos.tgz of the shared samples",  # never a path of this machine
    }
    results["data"] = data_throughput(shared)
    print(json.dumps(results["data"], indent=2), flush=True)
    results["head_training"] = head_training(shared, head_images, epochs, image_size)
    print(json.dumps(results["head_training"], indent=2), flush=True)
    if not skip_pipeline:
        overrides = {
            "augment": {"factor": pipeline_factor, "image_size": pipeline_size},
            "train": {"image_size": pipeline_size, "epochs": pipeline_epochs},
        }
        results["pipeline"] = pipeline(shared, overrides)
        print(json.dumps(results["pipeline"], indent=2), flush=True)
    write_result(RESULTS, "flowers", results, render(results))


def render(results: dict) -> str:
    """The figures as a markdown table."""
    data, head = results["data"], results["head_training"]
    lines = [
        "# Flowers benchmark (shared sample of flower_photos.tgz)",
        "",
        f"Machine: {results['machine']['cpus']} CPUs, torch {results['machine']['torch']}; "
        f"commit {results.get('commit', '-')[:12]}.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| prepare: files fully decoded and checked per second | {data['prepare_images_per_s']} |",
        f"| augment: copies written per second (224 px) | {data['augment_copies_per_s']} |",
        f"| head training, {head['epochs']} epochs, {head['train_images']} images at "
        f"{head['image_size']} px, baseline: frozen backbone run on every batch every epoch, JPEGs "
        f"decoded each epoch (the pipeline never does this) | {head['backbone_every_epoch_seconds']} s |",
        f"| the pipeline's way: cached features (featurize once + head) | {head['cached_total_seconds']} s "
        f"({head['cached_featurize_seconds']} + {head['cached_head_training_seconds']}) |",
        f"| speed-up, first run / re-tuning the head | {head['speedup_total']}x / "
        f"{head['speedup_retune_head']}x |",
        f"| final val accuracy, cached / backbone every epoch | {head['final_val_accuracy_cached']} / "
        f"{head['final_val_accuracy_backbone_every_epoch']} |",
    ]
    if "pipeline" in results:
        pipe = results["pipeline"]
        lines += [
            f"| full `dvc repro` ({pipe['settings']}) | {pipe['repro_seconds']} s |",
            f"| no-op `dvc repro` | {pipe['noop_repro_seconds']} s |",
        ]
        for name, accuracy in pipe["test_accuracy"].items():
            lines.append(
                f"| {name}: test accuracy / macro F1 ({pipe['test_images']} test images, "
                f"{pipe['epochs_run'][name]} epochs) | {accuracy} / {pipe['test_macro_f1'][name]} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
