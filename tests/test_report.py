"""The comparison report and the model registry, on a generated results tree and a real
temporary MLflow store (no mocks)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.conftest import minimal_params
from visionlab.params import parse_params
from visionlab.params.scale import quick_try
from visionlab.reporting import build_report
from visionlab.reporting.published import load_published
from visionlab.tracking.choice import ROBUST_ALIAS, Candidate, best_candidate
from visionlab.tracking.registry import register_best

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["cat", "dog", "fox"]
RESULTS = {  # experiment -> (test accuracy, macro F1)
    "toy-cnn": (0.80, 0.78),
    "toy-effnet": (0.90, 0.88),
}


def toy_params(**report):
    return parse_params(
        minimal_params(
            models={
                "cnn": {"arch": "handmade_cnn", "weights": "none", "base": "trainable", "augmented": False},
                "effnet": {
                    "arch": "efficientnet_lite0",
                    "weights": "imagenet",
                    "base": "frozen",
                    "augmented": False,
                },
            },
            experiments={
                "toy-cnn": {"dataset": "toy", "model": "cnn", "recipe": "default"},
                "toy-effnet": {"dataset": "toy", "model": "effnet", "recipe": "default"},
                "toy-pending": {"dataset": "toy", "model": "cnn", "recipe": "default"},
            },
            report=report,
        )
    )


def png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (120, 90)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def fake_experiment(
    root: Path, name: str, accuracy: float, f1: float, gallery: bool, run_id: str | None = None
):
    """What the train, evaluate and explain stages leave for one experiment."""
    results, evaluation, explain = (
        root / "results" / name,
        root / "data/eval" / name,
        root / "data/explain" / name,
    )
    write_json(
        results / "metrics.json",
        {
            "train": {"loss": 0.5 - accuracy / 10, "accuracy": accuracy + 0.05, "images": 70},
            "val": {"loss": 0.6 - accuracy / 10, "accuracy": accuracy - 0.02, "images": 20},
            "test": {"loss": 0.7 - accuracy / 10, "accuracy": accuracy, "images": 10, "macro_f1": f1},
            "training": {
                "seconds": 100 * accuracy,
                "images_per_second": 10 / accuracy,
                "epochs": 3,
                # A frozen base's head trains in seconds on features that took 20 minutes.
                **({"featurize_seconds": 1200.0} if "effnet" in name else {}),
            },
        },
    )
    pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "phase": ["train"] * 3,
            "train_loss": [1.0, 0.7, 0.5],
            "train_accuracy": [0.4, 0.6, accuracy + 0.05],
            "val_loss": [1.1, 0.8, 0.6],
            "val_accuracy": [0.3, 0.5, accuracy - 0.02],
        }
    ).to_csv(results / "history.csv", index=False)
    per_class = pd.DataFrame(
        {
            "class": [*CLASSES, "macro avg", "weighted avg"],
            "precision": [accuracy, accuracy - 0.1, 1.0, f1, f1],
            "recall": [accuracy, 1.0, accuracy - 0.1, f1, f1],
            "f1": [accuracy, accuracy - 0.05, accuracy - 0.06, f1, f1],
            "support": [4, 3, 3, 10, 10],
        }
    )
    evaluation.mkdir(parents=True, exist_ok=True)
    per_class.to_csv(evaluation / "classification_report.csv", index=False)
    per_class.iloc[:3, :4].to_csv(results / "per_class.csv", index=False)
    png(evaluation / "confusion.png", (200, 30, 30))
    png(evaluation / "learning_curves.png", (30, 200, 30))
    right = round(10 * accuracy)  # the first `right` of the 10 test images
    pd.DataFrame(
        {"path": [f"data/raw/toy/{i}.jpg" for i in range(10)], "correct": [i < right for i in range(10)]}
    ).to_csv(evaluation / "predictions.csv", index=False)
    val_right = round(20 * (accuracy - 0.02))  # the first `val_right` of the 20 validation images
    pd.DataFrame(
        {"path": [f"data/raw/toy/v{i}.jpg" for i in range(20)], "correct": [i < val_right for i in range(20)]}
    ).to_csv(evaluation / "val_predictions.csv", index=False)
    overlays = [png(explain / c / f"correct-000-{c}-overlay.png", (30, 30, 200), (64, 64)) for c in CLASSES]
    index = {"method": "gradcam", "images": [{"overlay": str(p.relative_to(explain))} for p in overlays]}
    if gallery:  # the extended explain stage: an explicit thumbnail list and an HTML gallery
        index["thumbnails"] = [str(p.relative_to(explain)) for p in overlays[:2]] + ["missing.png"]
        (explain / "index.html").write_text("<html>gallery</html>")
    else:
        png(explain / "gradcam_grid.png", (90, 90, 90))
    write_json(explain / "index.json", index)
    if run_id:
        write_json(root / "data/models" / name / "mlflow_run.json", {"run_id": run_id})


@pytest.fixture
def results_tree(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for number, (name, (accuracy, f1)) in enumerate(RESULTS.items()):
        fake_experiment(root, name, accuracy, f1, gallery=number == 1)
    write_json(
        root / "data/prepared/toy/report.json",
        {
            "files_seen": 33,
            "images_kept": 30,
            "before": dict.fromkeys(CLASSES, 11),
            "after": dict.fromkeys(CLASSES, 10),
            "dropped_by_reason": {"truncated": 2, "not_an_image": 1},
            "splits": {"train": dict.fromkeys(CLASSES, 7), "val": dict.fromkeys(CLASSES, 2)},
            "split_totals": {"train": 21, "val": 6},
        },
    )
    published = root / "config/published_results.yaml"
    published.parent.mkdir(parents=True)
    published.write_text(
        "toy:\n  study: the toy study\n  results:\n"
        "    handmade_cnn: {model: their CNN, test_accuracy: 0.75}\n"
        "    vgg16: {model: their VGG16, test_accuracy: 0.95}\n"
    )
    return root


def table(page: str, css_class: str) -> str:
    found = re.search(rf'<table class="{css_class}"[^>]*>(.*?)</table>', page, re.S)
    assert found, f"no {css_class} table"
    return found.group(1)


def body_rows(html_table: str) -> list[str]:
    return re.findall(r"<tr>(.*?)</tr>", html_table.split("<tbody>")[1], re.S)


def test_html_report_compares_every_experiment(results_tree, tmp_path):
    files = build_report(toy_params(), results_tree / "reports", root=results_tree, register=False)
    page = files.html.read_text()

    comparison = table(page, "comparison")
    rows = body_rows(comparison)
    assert [re.search(r"<td>([^<]+)</td>", r).group(1) for r in rows] == ["toy-cnn", "toy-effnet"]
    effnet = rows[1]
    # Best value per column in bold: the EfficientNet wins test accuracy, loss and F1 ...
    assert '<td class="num best"><strong>90.00%</strong></td>' in effnet
    assert '<td class="num best"><strong>0.8800</strong></td>' in effnet
    assert "<strong>80.00%</strong>" not in rows[0]
    # ... and the CNN cost less compute: 80 s of training against the EfficientNet's 90 s of
    # training on features that took 20 min; both parts shown, the total compared.
    assert "<th>features</th><th>training</th><th>compute time</th>" in comparison
    assert '<td class="num">–</td><td class="num">80.0 s</td><td class="num best"><strong>80.0 s' in rows[0]
    assert '<td class="num">20.0 min</td><td class="num">90.0 s</td><td class="num">21.5 min</td>' in effnet
    # Training rates say what they count and are never ranked against each other: a head on
    # cached features and a net on decoded images are not one measure.
    assert "<th>train images/s</th><th>on</th>" in comparison
    assert "<td>images</td>" in rows[0] and "<td>cache</td>" in effnet
    assert not re.search(r"<strong>[0-9.]+</strong></td><td>(images|cache)</td>", comparison)
    # The published figure of its arch on its data set, and the difference.
    assert "75.00%" in rows[0] and "+5.00 pp" in rows[0]
    assert "–" in effnet  # no published EfficientNet figure
    assert "toy-pending (handmade_cnn): not run yet" in page

    published = table(page, "published")
    assert "their VGG16" in published and "no experiment" in published
    assert "80.00% (toy-cnn)" in published

    # Self-contained: every image is a data URI, nothing is fetched.
    assert not re.search(r'(src|href)="https?://', page) and "<script" not in page and "<link" not in page
    confusion = (results_tree / "data/eval/toy-cnn/confusion.png").read_bytes()
    assert f'src="data:image/png;base64,{base64.b64encode(confusion).decode()}"' in page
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    images = [Image.open(io.BytesIO(base64.b64decode(u))) for u in uris]
    # 2 confusion matrices + 2 learning curves + 1 overview + 3 + 2 thumbnails
    assert len(images) == 10 and all(i.width > 0 for i in images)

    # Thumbnails link to the gallery (index.html), else to the Grad-CAM grid.
    assert 'href="../data/explain/toy-effnet/index.html"' in page
    assert 'href="../data/explain/toy-cnn/gradcam_grid.png"' in page
    effnet_thumbs = re.search(r'<div class="thumbs" data-experiment="toy-effnet">(.*?)</div>', page, re.S)
    assert effnet_thumbs.group(1).count("<img") == 2  # the listed thumbnails that exist

    per_class = table(page, "per-class")
    assert [re.search(r"<td>([^<]+)</td>", r).group(1) for r in body_rows(per_class)] == [
        *CLASSES,
        "macro avg",
        "weighted avg",
    ]
    cleaning = table(page, "cleaning")
    assert "<td>total</td>" in cleaning and ">33<" in cleaning and ">30<" in cleaning
    assert "truncated" in table(page, "dropped")


def test_markdown_and_csv_outputs(results_tree):
    files = build_report(toy_params(), results_tree / "reports", root=results_tree, register=False)
    summary = files.summary.read_text()
    assert "## toy" in summary
    effnet_row = next(line for line in summary.splitlines() if line.startswith("| toy-effnet"))
    assert "**90.00%**" in effnet_row and "**0.8800**" in effnet_row
    assert "Not run yet: toy-pending (handmade_cnn)." in summary
    # 8 of 10 test images: the 95% interval holds the study's 75%, so +5 points is no win.
    published = "| their CNN | handmade_cnn | 75.00% | 80.00% (toy-cnn) | 49.02–94.33% | +5.00 pp |"
    assert f"{published} within chance |" in summary
    assert "30 images kept; dropped: truncated 2, not_an_image 1" in summary
    # Paired on the same 10 test images against the one chosen on validation (toy-effnet): toy-cnn
    # misses one image more, which McNemar cannot tell from chance.
    assert "| vs toy-effnet (chosen on val.) | both right | only toy-effnet | only this one |" in summary
    # On validation (18 and 16 of 20 right) the choice rests on 2 photos: no margin beyond chance either.
    assert "| differ at 5%? | on val.: only toy-effnet / only this one | val. McNemar p |" in summary
    assert "| toy-cnn | 8 | 1 | 0 | 1 | no | 2 / 0 | 0.5 |" in summary
    header = next(line for line in summary.splitlines() if line.startswith("| class |"))
    assert "toy-cnn P" in header and "toy-cnn R" in header and "toy-effnet F1" in header

    comparison = pd.read_csv(files.comparison)
    assert comparison.experiment.tolist() == ["toy-cnn", "toy-effnet", "toy-pending"]
    assert comparison.status.tolist() == ["done", "done", "not run yet"]
    assert comparison.delta_accuracy.iloc[0] == pytest.approx(0.05)
    assert comparison.test_accuracy_ci_low.iloc[0] == pytest.approx(0.4902, abs=1e-4)
    assert comparison.test_accuracy_ci_high.iloc[0] == pytest.approx(0.9433, abs=1e-4)
    assert comparison.vs_published.iloc[0] == "within chance"
    assert comparison.compute_seconds.tolist()[:2] == pytest.approx([80.0, 1290.0])
    assert comparison.featurize_seconds.iloc[1] == 1200.0 and comparison.train_seconds.iloc[1] == 90.0
    curves = pd.read_csv(files.learning_curves)
    assert list(curves.columns[:3]) == ["dataset", "experiment", "epoch"]
    assert curves.groupby("experiment").size().to_dict() == {"toy-cnn": 3, "toy-effnet": 3}


def test_trained_on_is_what_the_train_stage_recorded(results_tree):
    """A net trained on images whose featurize ran and cached nothing (activation_cache: off) is
    "images", however many seconds featurize logged; runs without the record fall back on whether
    featurize ran."""
    frame = lambda: pd.read_csv(  # noqa: E731
        build_report(toy_params(), results_tree / "reports", root=results_tree, register=False).comparison,
        keep_default_na=False,
    ).set_index("experiment")
    assert frame().trained_on.to_dict() == {"toy-cnn": "images", "toy-effnet": "cache", "toy-pending": ""}
    write_json(results_tree / "data/models/toy-effnet/summary.json", {"trained_on": "images"})
    write_json(results_tree / "data/models/toy-cnn/summary.json", {"trained_on": "cached features"})
    assert frame().trained_on.to_dict() == {"toy-cnn": "cache", "toy-effnet": "images", "toy-pending": ""}


def test_the_validation_pair_needs_both_rows_answers_on_the_same_images(results_tree):
    """Rows evaluated before validation's answers were written, or on another validation split,
    get no validation test; their test pair stands."""
    (results_tree / "data/eval/toy-cnn/val_predictions.csv").unlink()
    summary = build_report(toy_params(), results_tree / "reports", root=results_tree, register=False)
    assert "| toy-cnn | 8 | 1 | 0 | 1 | no | – | – |" in summary.summary.read_text()
    pd.DataFrame({"path": ["elsewhere.jpg"], "correct": [True]}).to_csv(
        results_tree / "data/eval/toy-cnn/val_predictions.csv", index=False
    )
    summary = build_report(toy_params(), results_tree / "reports", root=results_tree, register=False)
    assert "| toy-cnn | 8 | 1 | 0 | 1 | no | – | – |" in summary.summary.read_text()


def test_report_before_anything_ran(tmp_path):
    files = build_report(toy_params(), tmp_path / "reports", root=tmp_path, register=False)
    page = files.html.read_text()
    assert "No experiment of this data set has results yet." in page
    assert page.count("not run yet</li>") == 3
    assert "No cleaning report yet" in page
    assert pd.read_csv(files.learning_curves).empty


def test_damaged_outputs_degrade_the_report_not_break_it(results_tree):
    (results_tree / "data/explain/toy-cnn/index.json").write_text("{not json")
    (results_tree / "results/toy-effnet/metrics.json").write_text("[1, 2")
    files = build_report(toy_params(), results_tree / "reports", root=results_tree, register=False)
    page = files.html.read_text()
    assert "toy-effnet (efficientnet_lite0):" in page and "is unreadable" in page
    assert 'data-experiment="toy-cnn"' not in page  # no thumbnails row without an index


def test_repository_published_figures_cover_the_studies():
    figures = load_published(ROOT / "config/published_results.yaml")
    assert figures["flowers"]["resnet50"].test_accuracy == pytest.approx(0.9306)
    assert figures["flowers"]["handmade_cnn"].test_accuracy == pytest.approx(0.7278)
    assert figures["kaggle_flowers"]["vgg16"].test_accuracy == pytest.approx(0.8547)
    assert figures["cifar10"]["cifar_residual"].test_accuracy == pytest.approx(0.7480)
    assert {a: f.test_accuracy for a, f in figures["caltech101_5"].items()} == {
        "caltech_cnn1": 0.76,
        "caltech_cnn2": 0.76,
        "caltech_cnn3": 0.76,
        "vgg19": 0.93,
    }


# --- the model registry, against a real SQLite MLflow store -------------------------------------


def logged_run(experiment: str, dataset: str = "toy") -> str:
    """A run with a tiny trained-looking model logged the way the evaluate stage logs it."""
    import torch

    from visionlab.models import build_model
    from visionlab.params import ModelParams
    from visionlab.tracking import start_run
    from visionlab.tracking.model_logging import log_classifier

    torch.manual_seed(0)
    spec = ModelParams(arch="handmade_cnn", weights="none", base="trainable", augmented=False)
    model = build_model(spec, len(CLASSES)).eval()
    run = start_run(dataset, experiment)
    example = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    log_classifier(run, model, example, CLASSES, {"experiment": experiment})
    run.finish(True)
    return run.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The project's default store in a temporary project folder, shared by this module's tests
    (creating a SQLite store costs seconds); each test registers under its own data set name."""
    from mlflow.tracking import MlflowClient

    from visionlab.tracking import tracking_uri

    project = tmp_path_factory.mktemp("registry-project")
    (project / "dvc.yaml").write_text("stages: {}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("VISIONLAB_PROJECT_ROOT", raising=False)
        yield MlflowClient(tracking_uri=tracking_uri())


def test_registry_tracks_the_best_run(store, monkeypatch):
    import mlflow

    first, second = logged_run("pets-a", "pets"), logged_run("pets-b", "pets")
    # (validation accuracy, validation loss): a tie in accuracy goes to the lower loss.
    a_wins = [Candidate("pets-a", first, 0.9, 0.30), Candidate("pets-b", second, 0.9, 0.35)]
    b_wins = [Candidate("pets-a", first, 0.8, 0.30), Candidate("pets-b", second, 0.9, 0.35)]

    registered = register_best("pets", a_wins, store)
    assert (registered.name, registered.version, registered.changed) == ("visionlab-pets", "1", True)
    assert store.get_model_version_by_alias("visionlab-pets", "best").run_id == first
    assert register_best("pets", a_wins, store).changed is False  # same best: no new version

    registered = register_best("pets", b_wins, store)
    assert (registered.experiment, registered.version, registered.changed) == ("pets-b", "2", True)
    registered = register_best("pets", a_wins, store)  # back to the first: its version, not a third
    assert registered.version == "1"
    assert len(store.search_model_versions("name = 'visionlab-pets'")) == 2

    # The registered model is a usable MLflow model: signature, input example, probabilities out.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.tracking_uri)  # undone after the test
    info = mlflow.models.get_model_info("models:/visionlab-pets@best")
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 3, 32, 32]
    assert info.metadata["classes"] == CLASSES
    probabilities = mlflow.pyfunc.load_model("models:/visionlab-pets@best").predict(
        np.zeros((2, 3, 32, 32), np.float32)
    )
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_a_lesser_model_reported_later_does_not_take_the_alias(store):
    """Queued variants report from their own workspaces, in any order: the alias keeps the best."""
    strong, weak = logged_run("fish-strong", "fish"), logged_run("fish-weak", "fish")
    assert register_best("fish", [Candidate("fish-strong", strong, 0.95, 0.2)], store).changed
    later = register_best("fish", [Candidate("fish-weak", weak, 0.7, 0.7)], store)
    assert (later.changed, later.experiment, later.run_id) == (False, "fish-strong", strong)
    assert store.get_model_version_by_alias("visionlab-fish", "best").run_id == strong
    # A better one does take it, and so does the workspace's best once the held run, rerun, got worse.
    assert register_best("fish", [Candidate("fish-weak", weak, 0.97, 0.2)], store).experiment == "fish-weak"
    worse = [Candidate("fish-weak", weak, 0.5, 0.9), Candidate("fish-strong", strong, 0.9, 0.2)]
    assert register_best("fish", worse, store).experiment == "fish-strong"


def test_the_registry_chooses_on_validation_and_never_takes_a_quick_try(store):
    """Selection never sees test; a debug run on a sample never displaces a full-set model."""
    chosen, tested_better, tiny = (logged_run(name, "owls") for name in ("owls-a", "owls-b", "owls-tiny"))
    candidates = [
        Candidate("owls-a", chosen, val_accuracy=0.91, val_loss=0.30, test_accuracy=0.88, test_macro_f1=0.87),
        # Higher test accuracy, lower validation accuracy: choosing it would be selection on test.
        Candidate(
            "owls-b", tested_better, val_accuracy=0.89, val_loss=0.28, test_accuracy=0.95, test_macro_f1=0.95
        ),
        Candidate(
            "owls-tiny", tiny, 1.0, 0.01, 1.0, 1.0, quick_try="prepare.max_per_class is 20: a sample of owls"
        ),
    ]
    registered = register_best("owls", candidates, store)
    assert (registered.experiment, registered.run_id) == ("owls-a", chosen)
    tags = store.get_model_version_by_alias("visionlab-owls", "best").tags
    assert tags["visionlab.selected_on"] == "validation"
    assert (tags["val_accuracy"], tags["val_loss"], tags["test_accuracy"]) == ("0.9100", "0.3000", "0.8800")

    only_quick = register_best("owls", candidates[2:], store)
    assert only_quick.changed is False and "only quick tries" in only_quick.skipped
    assert store.get_model_version_by_alias("visionlab-owls", "best").run_id == chosen
    nobody = register_best("wrens", candidates[2:], store)
    assert "owls-tiny: prepare.max_per_class is 20" in nobody.skipped
    assert "visionlab-wrens" not in [m.name for m in store.search_registered_models()]


def test_a_quick_try_is_named_as_such_and_shipped_experiments_are_full_scale():
    shipped = parse_params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert [name for name in shipped.experiments if quick_try(shipped, name)] == []
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["prepare"]["max_per_class"] = 20  # the README's quick try
    raw["augment"]["image_size"] = raw["train"]["image_size"] = 64
    tried = parse_params(raw)
    assert quick_try(tried, "flowers-cnn").startswith("prepare.max_per_class is 20: a sample of flowers; ")
    assert "train.image_size is 64 px, below the default 224" in quick_try(tried, "flowers-cnn")
    # The cats-and-dogs card caps itself (the study's subset) and sets its own side: still full scale.
    assert quick_try(tried, "catsdogs-best") is None
    raw["experiments"]["caltech-cnn1"]["model_overrides"] = {"image_size": 112}
    assert "112 px is below datasets.caltech101_5.image_size (224)" in quick_try(
        parse_params(raw), "caltech-cnn1"
    )


def test_registry_skips_unknown_runs_with_a_warning(store, caplog):
    from visionlab.tracking import start_run

    bare = start_run("birds", "birds-bare")  # evaluated before models were logged
    bare.finish(True)
    with caplog.at_level(logging.WARNING):
        unknown = register_best("birds", [Candidate("birds-a", "0" * 32, 0.9, 0.2)], store)
        no_model = register_best("birds", [Candidate("birds-bare", bare.run_id, 0.9, 0.2)], store)
        no_record = register_best("birds", [Candidate("birds-c", None, 0.9, 0.2)], store)
    assert "unknown to the store" in unknown.skipped
    assert "no logged mlflow_model" in no_model.skipped
    assert "no MLflow run recorded" in no_record.skipped
    assert "skipped" in caplog.text
    assert "visionlab-birds" not in [m.name for m in store.search_registered_models()]


def test_report_registers_each_data_sets_best(store, results_tree):
    runs = {name: logged_run(name) for name in RESULTS}
    for name, run_id in runs.items():
        (results_tree / "data/models" / name).mkdir(parents=True)
        write_json(results_tree / "data/models" / name / "mlflow_run.json", {"run_id": run_id})
    files = build_report(toy_params(), results_tree / "reports", root=results_tree)
    (best,) = files.registrations["toy"]  # no degraded copies scored: no @robust
    assert (best.experiment, best.alias, best.skipped) == ("toy-effnet", "best", None), files.registrations
    assert store.get_model_version_by_alias("visionlab-toy", "best").run_id == runs["toy-effnet"]
    assert "models:/visionlab-toy@best" in files.html.read_text()
    assert "`models:/visionlab-toy@best` (version 1, new version)" in files.summary.read_text()

    # Degraded validation copies scored (evaluate.robustness): the CNN holds up to JPEG 30 better.
    for name, jpeg in (("toy-cnn", 0.74), ("toy-effnet", 0.60)):
        metrics_file = results_tree / "results" / name / "metrics.json"
        metrics = json.loads(metrics_file.read_text())
        metrics["val_downscale_128"] = {"accuracy": 0.8, "loss": 0.5, "images": 20}
        metrics["val_jpeg_30"] = {"accuracy": jpeg, "loss": 0.9, "images": 20}
        write_json(metrics_file, metrics)
    files = build_report(toy_params(), results_tree / "reports", root=results_tree)
    best, robust = files.registrations["toy"]
    assert (best.experiment, robust.experiment, robust.alias) == ("toy-effnet", "toy-cnn", "robust")
    assert store.get_model_version_by_alias("visionlab-toy", "robust").run_id == runs["toy-cnn"]
    assert store.get_model_version_by_alias("visionlab-toy", "best").run_id == runs["toy-effnet"]
    summary = files.summary.read_text()
    assert (
        "Chosen on its worst degraded validation copy: **toy-cnn** -> `models:/visionlab-toy@robust`"
        in summary
    )
    assert "models:/visionlab-toy@robust" in files.html.read_text()
    # The comparison shows each run's worst degraded copy beside its clean figures.
    compared = pd.read_csv(files.comparison).set_index("experiment")
    assert compared.loc["toy-cnn", "val_worst_degraded"] == 0.74
    assert compared.loc["toy-effnet", "val_worst_degraded"] == 0.60
    assert pd.isna(compared.loc["toy-cnn", "test_worst_degraded"])  # no degraded test copy scored
    assert "worst degraded val." in summary


def test_the_robust_alias_is_chosen_on_the_worst_degraded_validation_copy(store):
    plain, robust, older = (logged_run(name, "cats") for name in ("cats-plain", "cats-robust", "cats-old"))
    candidates = [
        Candidate("cats-plain", plain, 0.96, 0.20, test_accuracy=0.99, val_worst_degraded=0.80),
        # Lower on clean validation and test: chosen for degraded photos all the same, never on test.
        Candidate("cats-robust", robust, 0.94, 0.25, test_accuracy=0.90, val_worst_degraded=0.92),
        Candidate("cats-old", older, 0.97, 0.10),  # its degraded copies never scored: no say
    ]
    assert register_best("cats", candidates, store).experiment == "cats-old"
    chosen = register_best("cats", candidates, store, alias=ROBUST_ALIAS)
    assert (chosen.experiment, chosen.alias, chosen.changed) == ("cats-robust", "robust", True)
    assert chosen.chosen_on == "its worst degraded validation copy"
    tags = store.get_model_version_by_alias("visionlab-cats", "robust").tags
    assert (tags["val_worst_degraded"], tags["val_accuracy"]) == ("0.9200", "0.9400")
    # A workspace holding only the plain run reports later: the alias stays, compared on its tags.
    later = register_best("cats", candidates[:1], store, alias=ROBUST_ALIAS)
    assert (later.changed, later.experiment) == (False, "cats-robust")
    # A tie on the degraded copy goes to clean validation.
    tied = [candidates[1], Candidate("cats-plain", plain, 0.95, 0.2, val_worst_degraded=0.92)]
    assert best_candidate(tied, ROBUST_ALIAS).experiment == "cats-plain"
    assert best_candidate(candidates[2:], ROBUST_ALIAS) is None
    unscored = register_best("cats", candidates[2:], store, alias=ROBUST_ALIAS)
    assert "scored degraded validation copies" in unscored.skipped and unscored.alias == "robust"
    with pytest.raises(ValueError, match="registry alias 'robustt': visionlab chooses only best, robust"):
        register_best("cats", candidates, store, alias="robustt")


def test_the_robust_alias_goes_only_to_a_model_within_chance_of_the_best_clean_one(store):
    def candidate(name: str, run_id: str | None, val: float, worst: float, low: float = math.nan):
        return Candidate(name, run_id, val, 0.2, val_worst_degraded=worst, val_accuracy_low=low)

    best = candidate("dogs-best", None, 0.95, 0.75, low=0.935)  # its interval reaches down to 93.5%
    close = candidate("dogs-close", None, 0.94, 0.90)
    bound = candidate("dogs-bound", None, 0.90, 0.92)  # the best degraded copy, 5 clean points down
    assert best_candidate([best, close, bound], ROBUST_ALIAS).experiment == "dogs-close"
    assert best_candidate([best, bound], ROBUST_ALIAS).experiment == "dogs-best"
    wide = dataclasses.replace(best, val_accuracy_low=0.88)  # few validation images: a wide interval
    assert best_candidate([wide, bound], ROBUST_ALIAS).experiment == "dogs-bound"
    unknown = dataclasses.replace(best, val_accuracy_low=math.nan)  # no count: nothing to judge by
    assert best_candidate([unknown, bound], ROBUST_ALIAS).experiment == "dogs-bound"
    # The bound took @robust alone; a report that holds the best clean model takes it back, though
    # the bound's tagged degraded score is higher.
    bound_run, best_run = logged_run("dogs-bound", "dogs"), logged_run("dogs-best", "dogs")
    bound, best = dataclasses.replace(bound, run_id=bound_run), dataclasses.replace(best, run_id=best_run)
    assert register_best("dogs", [bound], store, alias=ROBUST_ALIAS).experiment == "dogs-bound"
    moved = register_best("dogs", [best], store, alias=ROBUST_ALIAS)
    assert (moved.experiment, moved.changed) == ("dogs-best", True)
    assert store.get_model_version_by_alias("visionlab-dogs", "robust").run_id == best_run


# --- the top-level DVC plots -------------------------------------------------------------------


@pytest.mark.slow  # three DVC/git processes: DVC's imports alone cost seconds each
def test_dvc_plots_draw_every_experiments_curves(results_tree, tmp_path):
    """`dvc plots show` renders the top-level plots of dvc.yaml from the report's CSV files."""
    project = tmp_path / "dvc-project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "config", project / "config")
    build_report(toy_params(), project / "reports", root=results_tree, register=False)

    def run(*args: str) -> str:
        result = subprocess.run(args, cwd=project, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    run("git", "init", "-q")
    run(sys.executable, "-m", "dvc", "init", "-q")
    shown = json.loads(run(sys.executable, "-m", "dvc", "plots", "show", "--json"))
    # (The per-stage plots' files do not exist in this bare copy: only the report's must load.)
    assert not [e for e in shown.get("errors", []) if e["source"].startswith("reports/")]
    plots = {k: v for k, v in shown["data"].items() if "every experiment" in k}
    assert set(plots) == {"accuracy per epoch, every experiment", "loss per epoch, every experiment"}
    assert "test accuracy per experiment" in shown["data"]
    spec = plots["accuracy per epoch, every experiment"][0]["content"]
    assert spec["encoding"]["color"]["field"] == "experiment"
    values = spec["data"]["values"]
    assert {v["experiment"] for v in values} == set(RESULTS)
    assert {v["field"] for v in values} == {"train_accuracy", "val_accuracy"}


def test_ties_and_lone_rows_are_not_bolded():
    from visionlab.reporting.frames import COMPARISON_COLUMNS
    from visionlab.reporting.tables import comparison_table

    frame = pd.DataFrame(
        [
            {"experiment": n, "model": "cnn", "arch": "handmade_cnn", "status": "done", "test_accuracy": 0.5}
            for n in ("a", "b")
        ]
    ).reindex(columns=COMPARISON_COLUMNS)
    assert not any(cell.best for row in comparison_table(frame).rows for cell in row)
    frame.loc[1, "test_accuracy"] = 0.75
    best = [[cell.text for cell in row if cell.best] for row in comparison_table(frame).rows]
    assert best == [[], ["75.00%"]]
