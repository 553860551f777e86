"""The full-scale benchmark's work copy of the project, and one experiment's row from it.

:func:`prepare_project` syncs a work folder to this checkout's code and params and commits it;
:func:`run_experiment` runs `dvc repro evaluate@<experiment>` there, and :func:`result_row` reads
the row back from what the stages wrote, with what produced it (:func:`provenance`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import yaml
from provenance import source_commit

from visionlab import paths
from visionlab.params import load_params
from visionlab.paths import PROJECT_DIRS, PROJECT_FILES
from visionlab.reporting.collect import read_datasets
from visionlab.reporting.compare import as_number
from visionlab.reporting.frames import comparison_frame
from visionlab.reporting.published import load_published
from visionlab.runtime.feature_cache import featurize_seconds

REPO = Path(__file__).resolve().parents[1]
SYNCED_COMMIT = "SOURCE_COMMIT"  # in the work copy: the visionlab commit its code was synced from
# Data sets whose mirror archive is not the full public set (say so beside their figures).
CATS_DOGS_COPY = "public copy at 180 px, smaller than Microsoft's originals"
NOTES = {
    "kaggle_flowers": "sample only (200 images): the full Kaggle set is not available offline",
    "cats_dogs": CATS_DOGS_COPY,
    "cats_dogs_all": CATS_DOGS_COPY,  # the same archive, every photo
}


def prepare_project(work: Path, mirror: Path) -> Path:
    """The work copy, synced to this checkout's code and params (the mirror set) and committed.

    Synced before every run, so a row is never measured on an older copy's code; DVC's cache in the
    copy keeps every stage whose code and params did not change.
    """
    fresh = not (work / "dvc.yaml").is_file()
    work.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, work / name)
    for name in PROJECT_DIRS:
        if name == ".dvc":  # its config only: the copy's cache and temporary files stay
            (work / ".dvc").mkdir(exist_ok=True)
            for file in ("config", ".gitignore"):
                if (REPO / ".dvc" / file).is_file():
                    shutil.copy2(REPO / ".dvc" / file, work / ".dvc" / file)
            continue
        shutil.rmtree(work / name, ignore_errors=True)
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["download"]["mirror"] = str(mirror.resolve())
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The commit the copy now holds, read back by provenance(): this checkout may move on meanwhile.
    synced = source_commit(REPO)
    (work / SYNCED_COMMIT).write_text(synced + "\n")
    steps = [["git", "add", "-A"], ["git", "commit", "-qm", f"full scale at {synced}", "--allow-empty"]]
    for args in ([["git", "init", "-q"]] if fresh else []) + steps:
        subprocess.run(args, cwd=work, check=True, env=run_env(work), capture_output=True)
    return work


def provenance(project: Path, experiment: str, dataset: str) -> dict[str, Any]:
    """What produced a row: the visionlab commit, a hash of the params, the output hash of each stage."""
    lock = yaml.safe_load((project / "dvc.lock").read_text()) if (project / "dvc.lock").is_file() else {}
    stages = (lock or {}).get("stages", {})
    names = [f"{s}@{dataset}" for s in ("download", "prepare", "augment")]
    names += [f"{s}@{experiment}" for s in ("featurize", "train", "evaluate")]
    hashes = {}
    for name in names:
        outs = stages.get(name, {}).get("outs") or []
        if outs:
            hashes[name] = outs[0].get("md5")
    params = (project / "params.yaml").read_bytes()
    synced = project / SYNCED_COMMIT
    return {
        "commit": synced.read_text().strip() if synced.is_file() else None,
        "params_sha256": hashlib.sha256(params).hexdigest()[:16],
        "stages": hashes,
    }


def run_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "VISIONLAB_"))}
    env["PYTHONPATH"] = str(work / "src")  # stages run the copy's code
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.invalid",
        VISIONLAB_OFFLINE="1",
    )
    return env


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _published(project: Path, dataset: str, cells: dict[str, Any]) -> dict[str, Any]:
    """The study's figure for this arch; for a model no study trained, the study's best on the set."""
    if as_number(cells["published_accuracy"]) is not None:
        return {
            "published_model": cells["published_model"] or None,
            "published_accuracy": as_number(cells["published_accuracy"]),
        }
    figures = load_published(project / "config" / "published_results.yaml").get(dataset, {})
    if not figures:
        return {"published_model": None, "published_accuracy": None}
    best = max(figures.values(), key=lambda figure: figure.test_accuracy)
    return {"published_model": f"study's best: {best.model}", "published_accuracy": best.test_accuracy}


def result_row(project: Path, experiment: str) -> dict[str, Any]:
    """One experiment's figures, read from what its stages wrote in ``project``."""
    params = load_params(project / "params.yaml")
    frame = comparison_frame(read_datasets(params, project))
    found = frame[frame.experiment == experiment]
    if found.empty:
        raise click.ClickException(f"{experiment}: not an experiment of {project / 'params.yaml'}")
    cells = found.iloc[0].to_dict()
    dataset = cells["dataset"]
    cleaning = read_json(project / "data" / "prepared" / dataset / "report.json")
    row = {
        "experiment": experiment,
        "dataset": dataset,
        "arch": cells["arch"],
        "recipe": cells["recipe"],
        "status": cells["status"],
        **_published(project, dataset, cells),
        "split_counts": cleaning.get("split_totals"),
        "featurize_seconds": featurize_seconds(experiment, project),
        "note": NOTES.get(dataset),
    }
    for key in (
        "train_accuracy",
        "val_accuracy",
        "test_accuracy",
        "test_macro_f1",
        "train_seconds",
        "images_per_second",
        "epochs",
    ):
        row[key] = as_number(cells[key])
    # The interval and the count behind it, and every degraded or flipped copy of test evaluate scored.
    row["test_images"] = as_number(cells["test_images"])
    low, high = as_number(cells["test_accuracy_ci_low"]), as_number(cells["test_accuracy_ci_high"])
    row["test_ci95"] = [low, high] if low is not None and high is not None else None
    metrics = read_json(project / "results" / experiment / "metrics.json")
    for prefix in ("test", "val"):  # val_<degradation>: what a robust recipe is chosen on
        row[f"{prefix}_variants"] = {
            split: as_number(values.get("accuracy"))
            for split, values in metrics.items()
            if split.startswith(f"{prefix}_") and isinstance(values, dict)
        }
    row["epoch_seconds"] = epoch_seconds(project / "results" / experiment / "history.csv")
    # What the loop trained on ("images", or featurize's cached features or activations): a
    # fine-tuned base with activation_cache: off runs a featurize that caches nothing.
    row["trained_on"] = read_json(project / paths.model_dir(experiment) / "summary.json").get("trained_on")
    row["provenance"] = provenance(project, experiment, dataset)
    return row


def dvc_repro(project: Path, experiment: str) -> tuple[subprocess.CompletedProcess, float]:
    """`dvc repro evaluate@<experiment>` in ``project``, and its wall seconds."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", f"evaluate@{experiment}"],
        cwd=project,
        env=run_env(project),
        capture_output=True,
        text=True,
        check=False,
    )
    return result, round(time.perf_counter() - started, 1)


def epoch_seconds(history: Path) -> float | None:
    """The train stage's epochs in seconds, validation included (history.csv's seconds column):
    what `visionlab plan` estimates for train. train_seconds counts the training passes alone."""
    try:
        with history.open(newline="") as handle:
            return round(sum(float(line["seconds"]) for line in csv.DictReader(handle)), 3)
    except (OSError, KeyError, ValueError):
        return None


def run_experiment(project: Path, experiment: str) -> dict[str, Any]:
    """`dvc repro evaluate@<experiment>` in ``project``; its row, or the reason it failed."""
    result, wall = dvc_repro(project, experiment)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()
        errors = [line for line in output if "error" in line.lower()] or output[-1:] or ["(no output)"]
        return {"experiment": experiment, "status": f"dvc repro failed: {errors[0].strip()[:300]}"}
    row = result_row(project, experiment)
    row["wall_seconds"] = wall
    return row
