"""The real pipeline: `dvc repro` over HTTP on 127.0.0.1 with the shared flowers sample, tiny settings.

One test walks the user's path: a full repro, a no-op repro, then `dvc exp run -S train.lr=...`
that must retrain without re-downloading, re-cleaning or re-augmenting.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.http_server import serve

REPO = Path(__file__).resolve().parents[2]
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "pyproject.toml"]
PROJECT_DIRS = ["stages", "src", "config", ".dvc"]
EXPERIMENTS = ("flowers-cnn", "flowers-effnet")
CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
PER_CLASS = 10

pytestmark = pytest.mark.slow


def copy_project(target: Path) -> Path:
    target.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, target / name)
    for name in PROJECT_DIRS:
        shutil.copytree(
            REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache")
        )
    return target


def tiny_params(project: Path, url: str, shared: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["datasets"] = {"flowers": params["datasets"]["flowers"]}  # the other four have their own tests
    sums = dict(reversed(line.split()) for line in (shared / "SHA256SUMS").read_text().splitlines() if line)
    params["datasets"]["flowers"]["source"].update(
        url=f"{url}/flower_photos.tgz",
        sha256=sums["flower_photos.tgz"],
        size=(shared / "flower_photos.tgz").stat().st_size,
    )
    params["download"]["backoff_s"] = 0.1
    params["prepare"].update(max_per_class=PER_CLASS)
    params["augment"].update(factor=2, image_size=48)
    params["train"].update(image_size=48, epochs=2, batch_size=16, num_workers=0)
    params["evaluate"].update(num_workers=0)
    params["explain"].update(images_per_class=1)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run(project: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "VISIONLAB_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(project / "src")  # stages run the copy's code
    result = subprocess.run(
        args, cwd=project, env=env, capture_output=True, text=True, timeout=1200, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
    return output


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def git(project: Path, *args: str) -> None:
    run(project, "git", *args)
    if args[0] == "init":
        # A repo-local identity: `dvc exp run` commits, and CI machines may have no global one.
        run(project, "git", "config", "user.name", "visionlab-ci")
        run(project, "git", "config", "user.email", "ci@example.invalid")


def mlflow_runs(project: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("flowers")
    assert experiment is not None, "no MLflow experiment named after the data set"
    return client, client.search_runs([experiment.experiment_id])


def test_repro_noop_and_experiment(tmp_path, shared_datasets):
    project = copy_project(tmp_path / "project")
    dvc = [sys.executable, "-m", "dvc"]
    with serve(shared_datasets) as (url, behaviour):
        tiny_params(project, url, shared_datasets)
        git(project, "init", "-q")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "baseline")

        first = run(project, *dvc, "repro")
        stages = {f"{s}@flowers" for s in ("download", "prepare", "augment")}
        stages |= {f"{s}@{e}" for s in ("featurize", "train", "evaluate", "explain") for e in EXPERIMENTS}
        assert ran_stages(first) == stages
        assert any(r["path"] == "/flower_photos.tgz" for r in behaviour.requests)

        # Data stages.
        report = json.loads((project / "data/prepared/flowers/report.json").read_text())
        assert report["before"] == dict.fromkeys(CLASSES, 200)
        assert report["after"] == dict.fromkeys(CLASSES, PER_CLASS)
        assert report["dropped_by_reason"] == {"over_class_limit": 5 * (200 - PER_CLASS), "not_an_image": 1}
        assert any(d["path"].endswith("flower_photos/LICENSE.txt") for d in report["dropped"])
        manifest = pd.read_csv(project / "data/prepared/flowers/manifest.csv")
        assert manifest.split.value_counts().to_dict() == {"train": 35, "val": 10, "test": 5}
        augmented = pd.read_csv(project / "data/augmented/flowers/manifest.csv")
        assert len(augmented) == 2 * 35

        # Model stages, for both experiments.
        for name in EXPERIMENTS:
            assert (project / f"data/models/{name}/model.pt").is_file()
            history = pd.read_csv(project / f"results/{name}/history.csv")
            assert history.epoch.tolist() == [1, 2]
            metrics = json.loads((project / f"results/{name}/metrics.json").read_text())
            assert set(metrics) == {"train", "val", "test", "training"}
            assert metrics["training"]["epochs"] == 2 and metrics["training"]["images_per_second"] > 0
            assert metrics["test"]["images"] == 5 and 0 <= metrics["test"]["accuracy"] <= 1
            evaluation = project / f"data/eval/{name}"
            for artefact in ("confusion.png", "confusion_normalized.png", "learning_curves.png"):
                assert (evaluation / artefact).stat().st_size > 1000
            report_rows = pd.read_csv(evaluation / "classification_report.csv")
            assert report_rows["class"].tolist() == [*CLASSES, "macro avg", "weighted avg"]
            predictions = pd.read_csv(evaluation / "predictions.csv")
            assert predictions[[f"p_{c}" for c in CLASSES]].sum(axis=1).round(4).eq(1).all()
            explained = json.loads((project / f"data/explain/{name}/index.json").read_text())
            assert explained["images"], "no Grad-CAM images"
            for record in explained["images"]:
                assert (project / f"data/explain/{name}" / record["overlay"]).is_file()
        features = json.loads((project / "data/features/flowers-effnet/info.json").read_text())
        assert features["frozen"] and features["train_images"] == 70

        lock = yaml.safe_load((project / "dvc.lock").read_text())
        assert set(lock["stages"]) == stages
        metrics_json = json.loads(run(project, *dvc, "metrics", "show", "--json"))
        assert "results/flowers-cnn/metrics.json" in json.dumps(metrics_json)

        client, runs = mlflow_runs(project)
        assert {r.data.tags["visionlab.experiment"] for r in runs} == set(EXPERIMENTS)
        for mlrun in runs:
            assert mlrun.data.params["train.lr"] == "0.001"
            assert mlrun.data.params["model.arch"] in ("handmade_cnn", "efficientnet_lite0")
            assert {"test_accuracy", "test_macro_f1", "final_val_loss", "val_loss"} <= set(mlrun.data.metrics)
            assert len(client.get_metric_history(mlrun.info.run_id, "val_loss")) == 2
            assert mlrun.data.tags["mlflow.source.git.commit"]
            assert mlrun.info.status == "FINISHED"
            top = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
            assert {"model", "training", "evaluation", "explanations"} <= top

        # Nothing changed: nothing runs.
        second = run(project, *dvc, "repro")
        assert ran_stages(second) == set()
        assert "Data and pipelines are up to date" in second

        # A training variant retrains and re-evaluates, and leaves the data stages alone.
        git(project, "add", "-A")
        git(project, "commit", "-qm", "first run")
        requests_before = len(behaviour.requests)
        variant = run(project, *dvc, "exp", "run", "-S", "train.lr=0.0003")
        assert ran_stages(variant) == {
            f"{s}@{e}" for s in ("train", "evaluate", "explain") for e in EXPERIMENTS
        }
        assert len(behaviour.requests) == requests_before

    _, runs = mlflow_runs(project)
    variants = [r for r in runs if r.data.params.get("train.lr") == "0.0003"]
    assert len(variants) == 2
    assert all(r.data.tags["dvc.exp_name"] != "workspace" for r in variants)
    assert all("test_accuracy" in r.data.metrics for r in variants)


def test_one_data_set_chain_alone(tmp_path, shared_datasets):
    """`dvc repro prepare@caltech101_5` runs that data set's chain and nothing else."""
    project = copy_project(tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["download"]["mirror"] = str(shared_datasets)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(project, "init", "-q")
    output = run(project, sys.executable, "-m", "dvc", "repro", "prepare@caltech101_5")
    assert ran_stages(output) == {"download@caltech101_5", "prepare@caltech101_5"}
    report = json.loads((project / "data/prepared/caltech101_5/report.json").read_text())
    assert report["images_kept"] == 484
    assert not (project / "data/raw/flowers").exists()
