"""The real pipeline: `dvc repro` over HTTP on 127.0.0.1 with the shared flowers sample, tiny settings.

One test walks the user's path: a full repro, a no-op repro, then `dvc exp run -S train.lr=...`
that must retrain without re-downloading, re-cleaning or re-augmenting, then the README's
per-experiment lr override, which must keep that experiment's cached features.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
import yaml
from PIL import Image

# copy_project, git, mlflow_runs, run and tiny_params are imported from here by test_queue.py.
from tests.conftest import SHARED_DATASETS
from tests.integration.conftest import (  # noqa: F401
    PER_CLASS,
    copy_project,
    git,
    mlflow_runs,
    ran_stages,
    run,
    tiny_params,
)
from visionlab.tracking.registry import logged_model_id


def local_path(uri: str) -> Path:
    return Path(urlparse(uri).path)


# The experiments of the tiny run; the browser test reuses this run (same list, same session).
EXPERIMENTS = ("flowers-cnn", "flowers-effnet")
CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]

pytestmark = pytest.mark.slow


def test_repro_noop_and_experiment(tiny_pipeline):
    tiny = tiny_pipeline(EXPERIMENTS)  # the copied project after its first `dvc repro`
    project, first, behaviour = tiny.path, tiny.first_output, tiny.behaviour
    dvc = [sys.executable, "-m", "dvc"]
    stages = {f"{s}@flowers" for s in ("download", "prepare", "augment")}
    stages |= {f"{s}@{e}" for s in ("featurize", "train", "evaluate", "explain") for e in EXPERIMENTS}
    stages |= {"resolve", "report"}
    assert ran_stages(first) == stages
    assert any(r["path"] == "/flower_photos.tgz" for r in behaviour.requests)

    # Data stages.
    report = json.loads((project / "data/prepared/flowers/report.json").read_text())
    assert report["before"] == dict.fromkeys(CLASSES, 200)
    assert report["after"] == dict.fromkeys(CLASSES, PER_CLASS)
    # The curated list names 68 of the sample's photos (config/exclusions/flowers.txt); they go
    # before the per-class cap.
    assert report["dropped_by_reason"] == {
        "excluded_by_list": 68,
        "over_class_limit": 5 * 200 - 68 - 5 * PER_CLASS,
        "not_an_image": 1,
    }
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
        # evaluate.tta and evaluate.robustness in params.yaml: the test split again, flipped and
        # degraded, and validation the same (what TTA and a robust recipe are chosen on).
        variants = {"test_tta_hflip", "test_downscale_128", "test_jpeg_30"}
        val_variants = {"val_tta_hflip", "val_downscale_128", "val_jpeg_30"}
        assert set(metrics) == {"train", "val", "test", "training"} | variants | val_variants
        assert metrics["training"]["epochs"] == 2 and metrics["test"]["images"] == 5
        for v in variants:  # whole images right out of 5
            assert metrics[v]["images"] == 5
            assert metrics[v]["accuracy"] * 5 == pytest.approx(round(metrics[v]["accuracy"] * 5), abs=1e-4)
        for v in val_variants:
            assert metrics[v]["images"] == metrics["val"]["images"]
        evaluation = project / f"data/eval/{name}"
        for artefact in ("confusion.png", "confusion_normalized.png", "learning_curves.png"):
            assert (evaluation / artefact).stat().st_size > 1000
        report_rows = pd.read_csv(evaluation / "classification_report.csv")
        assert report_rows["class"].tolist() == [*CLASSES, "macro avg", "weighted avg"]
        predictions = pd.read_csv(evaluation / "predictions.csv")
        assert predictions[[f"p_{c}" for c in CLASSES]].sum(axis=1).round(4).eq(1).all()
        assert len(predictions) == 5
        assert metrics["test"]["accuracy"] == pytest.approx(predictions.correct.sum() / 5)
        val_answers = pd.read_csv(evaluation / "val_predictions.csv")  # the report's validation pairs
        assert len(val_answers) == metrics["val"]["images"]
        assert val_answers.correct.sum() == metrics["val"]["correct"]
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
        name = mlrun.data.tags["visionlab.experiment"]
        metrics = json.loads((project / f"results/{name}/metrics.json").read_text())
        assert mlrun.data.metrics["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
        # Throughput is what it says: every training image twice, in the seconds it took.
        rate, seconds = metrics["training"]["images_per_second"], metrics["training"]["seconds"]
        seen = 2 * int(mlrun.data.params["train_images"])
        assert rate * seconds == pytest.approx(seen, rel=0.01, abs=rate * 0.0006)
        assert mlrun.data.params["model.arch"] in ("handmade_cnn", "efficientnet_lite0")
        assert {"test_accuracy", "test_macro_f1", "final_val_loss", "val_loss"} <= set(mlrun.data.metrics)
        assert len(client.get_metric_history(mlrun.info.run_id, "val_loss")) == 2
        assert mlrun.data.tags["mlflow.source.git.commit"]
        assert mlrun.info.status == "FINISHED"
        top = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
        assert {"model", "training", "evaluation", "explanations"} <= top
        # The evaluate stage logged the model as an MLflow model, with signature and input example.
        model_id = logged_model_id(client, mlrun.info.run_id)
        assert model_id, "no mlflow_model logged"
        mlmodel = yaml.safe_load(
            (local_path(client.get_logged_model(model_id).artifact_location) / "MLmodel").read_text()
        )
        assert "pytorch" in mlmodel["flavors"] and mlmodel["signature"]["inputs"]
        assert mlmodel["saved_input_example_info"]["type"] == "ndarray"

    # The report stage: the comparison. The tiny run is a quick try: tagged, never registered.
    for mlrun in runs:
        assert mlrun.data.tags["visionlab.scale"] == "quick try"
    assert "visionlab-flowers" not in [m.name for m in client.search_registered_models()]
    page = (project / "reports/index.html").read_text()
    comparison = re.search(r'<table class="comparison" data-dataset="flowers">(.*?)</table>', page, re.S)
    assert comparison, "no comparison table for flowers"
    assert all(f"<td>{name}</td>" in comparison.group(1) for name in EXPERIMENTS)
    assert "72.78%" in comparison.group(1)  # the study's hand-made CNN, beside ours
    assert "<strong>" in comparison.group(1)
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) >= 2 * len(EXPERIMENTS)  # confusion matrices and learning curves at least
    assert Image.open(io.BytesIO(base64.b64decode(embedded[0]))).width > 0
    assert "only quick tries, which never become @best" in page
    summary = (project / "reports/summary.md").read_text()
    assert "## flowers" in summary and all(f"| {name} |" in summary for name in EXPERIMENTS)
    curves = pd.read_csv(project / "reports/learning_curves.csv")
    assert set(curves.experiment) == set(EXPERIMENTS)
    plots = json.loads(run(project, *dvc, "plots", "show", "--json"))
    assert not plots.get("errors"), plots.get("errors")
    drawn = plots["data"]["accuracy per epoch, every experiment"][0]["content"]["data"]["values"]
    assert {v["experiment"] for v in drawn} == set(EXPERIMENTS)

    # Nothing changed: nothing runs.
    second = run(project, *dvc, "repro")
    assert ran_stages(second) == set()
    assert "Data and pipelines are up to date" in second

    # plan counts only what `dvc repro` would run: nothing now; after a train.lr edit (which `dvc
    # status` shows only as resolve's until resolve reruns), train and evaluate, not featurize.
    plan = [sys.executable, "-m", "visionlab.cli", "plan", "--study", "flowers"]
    current = run(project, *plan)
    for name in EXPERIMENTS:
        assert f"  {name:<28} up to date: `dvc repro` would skip" in current, current
    edited = yaml.safe_load((project / "params.yaml").read_text())
    edited["train"]["lr"] = 0.0003
    (project / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    lines = run(project, *plan).splitlines()
    for name in EXPERIMENTS:
        line = next(line for line in lines if line.strip().startswith(f"{name} "))
        assert "(featurize up to date, train " in line and "evaluate up to date" not in line, line
    git(project, "checkout", "params.yaml")

    # The README's offline route: a mirror holding the same archive changes no byte, so it
    # reruns only the resolve stage; back to params.yaml as committed, nothing is downloaded
    # again (the data stages stay cached) and nothing else runs.
    git(project, "add", "-A")
    git(project, "commit", "-qm", "first run")
    requests_before = len(behaviour.requests)
    mirrored = run(project, *dvc, "exp", "run", "-S", f"download.mirror={SHARED_DATASETS}")
    assert ran_stages(mirrored) == {"resolve"}
    git(project, "checkout", "params.yaml")
    assert ran_stages(run(project, *dvc, "repro")) <= {"resolve"}
    assert len(behaviour.requests) == requests_before

    # Where and how fast it runs (device, workers, evaluation batch) reruns nothing.
    runtime = ["train.device=cpu", "train.num_workers=1", "evaluate.num_workers=1", "evaluate.batch_size=7"]
    moved = run(project, *dvc, "exp", "run", *(arg for key in runtime for arg in ("-S", key)))
    assert ran_stages(moved) == set()
    git(project, "checkout", "params.yaml")

    # A training variant retrains and re-evaluates, and leaves the data stages alone. With mixup:
    # flowers-cnn blends images, flowers-effnet its cached features.
    variant = run(project, *dvc, "exp", "run", "-S", "train.lr=0.0003", "-S", "train.mixup_alpha=0.2")
    assert ran_stages(variant) == {
        f"{s}@{e}" for s in ("train", "evaluate", "explain") for e in EXPERIMENTS
    } | {"report", "resolve"}  # resolve: train's record holds train.lr
    assert len(behaviour.requests) == requests_before

    _, runs = mlflow_runs(project)
    variants = [r for r in runs if r.data.params.get("train.lr") == "0.0003"]
    assert len(variants) == 2 and all(r.data.params["train.mixup_alpha"] == "0.2" for r in variants)
    assert all(r.data.tags["dvc.exp_name"] != "workspace" for r in variants)
    assert all("test_accuracy" in r.data.metrics for r in variants)
    assert "visionlab-flowers" not in [m.name for m in client.search_registered_models()]  # quick tries

    # The README's per-experiment override, as written: it reruns that experiment's model stages
    # and keeps its cached features (featurize depends on what changes them, not on lr).
    override = "++experiments.flowers-effnet.train_overrides.lr=0.0002"
    tuned = run(project, *dvc, "exp", "run", "-S", override, "explain@flowers-effnet")
    model_stages = {f"{s}@flowers-effnet" for s in ("train", "evaluate", "explain")}
    assert ran_stages(tuned) == {"resolve"} | model_stages
    status = run(project, *dvc, "status", "featurize@flowers-effnet")
    assert "up to date" in status, status
    # compare tests that variant against its baseline on the same test images, from DVC's cache.
    compare = [sys.executable, "-m", "visionlab.cli", "compare", "--experiment", "flowers-effnet"]
    compared = run(project, *compare)
    assert "test vs baseline:" in compared and "McNemar p=" in compared, compared

    # A head-only change retrains the head on the same cached features.
    head = "++experiments.flowers-effnet.model_overrides.head.dropout=0.25"
    reheaded = run(project, *dvc, "exp", "run", "-S", head, "explain@flowers-effnet")
    assert ran_stages(reheaded) == {"resolve"} | model_stages

    # An explanation-only override reruns explain alone: no retraining, no re-evaluation.
    alpha = "++experiments.flowers-cnn.explain_overrides.alpha=0.3"
    explained = run(project, *dvc, "exp", "run", "-S", alpha, "explain@flowers-cnn")
    assert ran_stages(explained) == {"resolve", "explain@flowers-cnn"}


def test_one_data_set_chain_alone(tmp_path, shared_datasets):
    """`dvc repro prepare@caltech101_5` runs that data set's chain and nothing else (resolve: a
    second, shared by every chain)."""
    project = copy_project(tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["download"]["mirror"] = str(shared_datasets)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(project, "init", "-q")
    output = run(project, sys.executable, "-m", "dvc", "repro", "prepare@caltech101_5")
    assert ran_stages(output) == {"resolve", "download@caltech101_5", "prepare@caltech101_5"}
    report = json.loads((project / "data/prepared/caltech101_5/report.json").read_text())
    assert report["images_kept"] == 484
    assert not (project / "data/raw/flowers").exists()
