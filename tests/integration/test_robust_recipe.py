"""The robust recipe as a user runs it: `dvc exp run` of `flowers-best-robust` beside `flowers-best` on
the shipped params.yaml, tiny settings, the flowers sample served on 127.0.0.1.

The unit tests degrade images and featurize a hand-built project; this one checks that the shipped
experiment carries its `train_degradations` through resolve, featurize, train, evaluate and MLflow:
its cached training features are not the clean recipe's, its validation features are, evaluate
scores both splits degraded, the run records the shares it trained with, and `visionlab predict`
quotes evaluate's figures beside a heavily compressed photo. And
`cifar-best-robust-redraw`, whose draws change every epoch, on the CIFAR-10 sample with `-S` settings
alone: it trains on the images, never a cache.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.http_server import serve
from tests.integration.conftest import copy_project, git, mlflow_runs, ran_stages, run, tiny_params

pytestmark = pytest.mark.slow

CLEAN, ROBUST = "flowers-best", "flowers-best-robust"


def _features(project: Path, experiment: str, split: str) -> dict:
    return torch.load(project / "data/features" / experiment / f"{split}.pt", weights_only=False)


def test_the_shipped_robust_recipe_trains_on_degraded_copies_and_is_scored_degraded(
    tmp_path, shared_datasets
):
    project = copy_project(tmp_path / "project")
    shipped = yaml.safe_load((project / "params.yaml").read_text())
    shares = shipped["experiments"][ROBUST]["model_overrides"]["train_degradations"]
    with serve(shared_datasets) as (url, _):
        tiny_params(project, url, shared_datasets, [CLEAN, ROBUST])
        git(project, "init", "-q")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "baseline")
        output = run(
            project, sys.executable, "-m", "dvc", "exp", "run", f"evaluate@{CLEAN}", f"evaluate@{ROBUST}"
        )
    assert {f"{stage}@{ROBUST}" for stage in ("featurize", "train", "evaluate")} <= ran_stages(output)

    # Featurize cached the same training images, a share of them degraded; validation stays clean.
    clean, robust = _features(project, CLEAN, "train"), _features(project, ROBUST, "train")
    assert robust["paths"] == clean["paths"]
    changed = [
        not torch.allclose(a, b, atol=1e-3)
        for a, b in zip(robust["activations"].float(), clean["activations"].float(), strict=True)
    ]
    assert 0 < sum(changed) < len(changed), "a share of the copies, not none and not all"
    assert torch.equal(
        _features(project, ROBUST, "val")["activations"], _features(project, CLEAN, "val")["activations"]
    )

    # Evaluate scored validation and test degraded, to choose on validation and report test.
    metrics = json.loads((project / "results" / ROBUST / "metrics.json").read_text())
    for name in shipped["evaluate"]["robustness"]:
        for split in ("val", "test"):
            assert 0.0 <= metrics[f"{split}_{name}"]["accuracy"] <= 1.0, (split, name)

    # Predict notes a heavily compressed photo with the figures evaluate measured for this model.
    from PIL import Image

    photo = next((project / "data/prepared/flowers").rglob("*.jpg"), None) or next(
        (project / "data/raw/flowers").rglob("*.jpg")
    )
    squeezed = tmp_path / "squeezed.jpg"
    with Image.open(photo) as image:
        image.convert("RGB").save(squeezed, quality=20)
    predicted = run(
        project, sys.executable, "-m", "visionlab.cli", "predict", "--experiment", ROBUST, str(squeezed)
    )
    val, jpeg = 100 * metrics["val"]["accuracy"], 100 * metrics["val_jpeg_30"]["accuracy"]
    assert f"[JPEG quality 20: validation {jpeg:.2f}% at JPEG 30, {val:.2f}% clean]" in predicted, predicted[
        -1500:
    ]

    # The run says what it trained on.
    _, runs = mlflow_runs(project)
    (tracked,) = [r for r in runs if r.data.tags.get("visionlab.experiment") == ROBUST]
    logged = {k.rsplit(".", 1)[-1]: v for k, v in tracked.data.params.items() if "train_degradations" in k}
    assert {key: float(logged[key]) for key in shares} == {key: float(v) for key, v in shares.items()}


REDRAWN = "cifar-best-robust-redraw"


def test_the_shipped_redrawn_recipe_trains_the_whole_net_on_images_redrawn_each_epoch(
    tmp_path, shared_datasets
):
    """`cifar-best-robust-redraw` as shipped, through `dvc exp run` with tiny `-S` settings only: no
    cache can hold a new draw every epoch, so it trains on the images, decoded every epoch (in the
    shipped loader workers), and MLflow records that its degradations were redrawn."""
    project = copy_project(tmp_path / "project")
    shipped = yaml.safe_load((project / "params.yaml").read_text())["experiments"][REDRAWN]
    assert shipped["model_overrides"]["train_degradations"]["redraw"] is True
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "baseline")
    tiny = {
        "prepare.max_per_class": "8",
        "train.epochs_cap": "2",
        f"experiments.{REDRAWN}.model_overrides.image_size": "48",
        f"++experiments.{REDRAWN}.train_overrides.batch_size": "16",  # a key the entry lacks: ++
    }
    with serve(shared_datasets) as (url, _):
        sets = [
            arg for key, value in {"download.mirror": url, **tiny}.items() for arg in ("-S", f"{key}={value}")
        ]
        output = run(project, sys.executable, "-m", "dvc", "exp", "run", *sets, f"evaluate@{REDRAWN}")
    assert {f"train@{REDRAWN}", f"evaluate@{REDRAWN}"} <= ran_stages(output)
    assert "training images every epoch: train_degradations.redraw" in output

    summary = json.loads((project / "data/models" / REDRAWN / "summary.json").read_text())
    assert summary["trained_on"] == "images" and summary["epochs_run"] == 2
    metrics = json.loads((project / "results" / REDRAWN / "metrics.json").read_text())
    assert 0.0 <= metrics["test_jpeg_30"]["accuracy"] <= 1.0 and metrics["val_jpeg_30"]["images"] > 0

    _, runs = mlflow_runs(project, "cifar10")
    (tracked,) = [r for r in runs if r.data.tags.get("visionlab.experiment") == REDRAWN]
    logged = {k: v for k, v in tracked.data.params.items() if "train_degradations" in k}
    assert any(k.endswith("redraw") and v == "True" for k, v in logged.items()), logged
