"""Test accuracy of the named experiments on the shared samples, through the real `dvc repro`.

The project is copied to benchmarks/work/zoo, pointed at the shared archives with
``download.mirror``, and `dvc repro evaluate@<experiment>` runs for each chosen experiment (its
whole chain: download, prepare, augment, featurize, train, evaluate). Experiments whose backbone
needs torchvision's ImageNet weights cannot run on a machine without internet and an empty torch
cache; they are listed with the error the pipeline gave, so the table says what was not measured.

The samples are small (flowers 1,000 images, Kaggle flowers 200, cats and dogs 402, CIFAR-10
5,000, Caltech 484), so these figures are not the studies' full-data numbers.

Usage:  uv run python benchmarks/zoo_accuracy.py [--experiment NAME ...] [--epochs N] [--factor N]
        uv run python benchmarks/zoo_accuracy.py --from-json   (tables again, nothing rerun)
Writes benchmarks/results/zoo_accuracy.{json,md}.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import click
import yaml

from visionlab.params import Params, load_params
from visionlab.paths import copy_project
from visionlab.reporting.published import load_published

sys.path.insert(0, str(Path(__file__).resolve().parent))
from full_scale_project import dvc_repro, run_env
from provenance import source_commit, write_result

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work" / "zoo"
RESULTS = REPO / "benchmarks" / "results"


def published_figures() -> dict[str, tuple[str, float]]:
    """``{experiment: (the study's model name, published test accuracy %)}`` for every experiment
    of params.yaml that has one: read from config/published_results.yaml by data set and arch,
    through the same parser and the same lookup as the report stage."""
    params = load_params(REPO / "params.yaml")
    figures = load_published(REPO / params.report.published)
    found = {}
    for name, exp in params.experiments.items():
        figure = figures.get(exp.dataset, {}).get(params.model_of(name).arch)
        if figure is not None:
            found[name] = (figure.model, round(100 * figure.test_accuracy, 2))
    return found


def _project(shared: Path, experiments: list[str], epochs: int | None, factor: int) -> Path:
    shutil.rmtree(WORK, ignore_errors=True)
    copy_project(REPO, WORK)
    params = yaml.safe_load((WORK / "params.yaml").read_text())
    params["download"]["mirror"] = str(shared)
    params["augment"]["factor"] = factor
    params["experiments"] = {name: params["experiments"][name] for name in experiments}
    if epochs is not None:
        for spec in params["experiments"].values():
            spec.setdefault("train_overrides", {})["epochs"] = epochs
    (WORK / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for args in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "zoo"]):
        subprocess.run(args, cwd=WORK, check=True, env=run_env(WORK), capture_output=True)
    return WORK


def _run(project: Path, experiment: str) -> dict:
    result, seconds = dvc_repro(project, experiment)
    row: dict = {"experiment": experiment, "wall_seconds": seconds}
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if "error" in line.lower()]
        error = (lines[0] if lines else (result.stdout + result.stderr)[-300:]).strip()[:300]
        row["error"] = error.replace(str(Path.home()), "~")  # never a path of this machine
        return row
    metrics = json.loads((project / "results" / experiment / "metrics.json").read_text())
    summary = json.loads((project / "data" / "models" / experiment / "summary.json").read_text())
    timing = json.loads((project / "results" / experiment / "training.json").read_text())
    row.update(
        test_accuracy=round(100 * metrics["test"]["accuracy"], 2),
        test_macro_f1=round(metrics["test"].get("macro_f1", float("nan")), 4),
        val_accuracy=round(100 * metrics["val"]["accuracy"], 2),
        test_images=metrics["test"]["images"],
        epochs_run=summary["epochs_run"],
        train_seconds=timing["train_seconds"],
        train_images_per_second=timing["train_images_per_second"],
        trained_on=summary["trained_on"],
    )
    return row


def _why_not_run(params: Params, name: str) -> str:
    model = params.model_of(name)
    if model.weights == "imagenet" and not model.arch.startswith("efficientnet"):
        return f"needs torchvision's ImageNet weights for {model.arch} (no internet on the benchmark machine)"
    return "not selected (CPU time)"


def _markdown(meta: dict, rows: list[dict]) -> str:
    """Every experiment of params.yaml, in its order: measured, failed (with the pipeline's
    error) or not run in this benchmark, each beside the study's published figure."""
    epochs, factor = meta.get("epochs_cap"), meta.get("augment_factor")
    published = published_figures()
    by_name = {r["experiment"]: r for r in rows}
    params = load_params(REPO / "params.yaml")
    names = list(params.experiments)
    lines = [
        "# Test accuracy of the experiments on the shared samples (CPU)",
        "",
        f"Real `dvc repro evaluate@<name>` per experiment; epochs cap: {epochs or 'none (the recipe)'}; "
        f"augment.factor {factor}; commit {(meta.get('commit') or '-')[:12]}. Samples, not the full "
        "data sets: compare with the studies' figures",
        "with care. Published figures: `config/published_results.yaml`, matched by data set and",
        "architecture as in the report (a `-best` recipe on the study's architecture is compared with",
        "the study's figure too).",
        "",
        "| experiment | test acc % | published % (study's model) | val acc % | test images | epochs "
        "| train s | img/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in [*names, *(n for n in by_name if n not in names)]:
        model, figure = published.get(name, ("", None))
        shown = f"{figure:.2f} ({model})" if figure is not None else ""
        r = by_name.get(name)
        if r is None:
            why = _why_not_run(params, name)
            lines.append(f"| {name} | not run in this benchmark: {why} | {shown} | | | | | |")
        elif "error" in r:
            lines.append(f"| {name} | not run: {r['error']} | {shown} | | | | | |")
        else:
            lines.append(
                f"| {name} | {r['test_accuracy']:.2f} | {shown} | {r['val_accuracy']:.2f} | "
                f"{r['test_images']} | {r['epochs_run']} | {r['train_seconds']:.0f} | "
                f"{r['train_images_per_second']:.1f} |"
            )
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--shared", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "datasets")
@click.option("--experiment", "experiments", multiple=True, help="Experiments to run (default: all).")
@click.option("--epochs", type=int, default=None, help="Cap every experiment's epochs (recorded).")
@click.option("--factor", default=5, show_default=True, help="augment.factor for the run.")
@click.option(
    "--from-json",
    is_flag=True,
    help="Run nothing: rewrite zoo_accuracy.md from zoo_accuracy.json and today's published figures.",
)
def main(
    shared: Path, experiments: tuple[str, ...], epochs: int | None, factor: int, from_json: bool
) -> None:
    if from_json:
        saved = json.loads((RESULTS / "zoo_accuracy.json").read_text())
        meta, rows = saved["meta"], saved["rows"]
    else:
        names = list(experiments) or list(load_params(REPO / "params.yaml").experiments)
        commit = source_commit(REPO)  # as the runs start: the tree may change while they run
        project = _project(shared, names, epochs, factor)
        rows = []
        for name in names:
            row = _run(project, name)
            print(json.dumps(row), flush=True)
            rows.append(row)
        meta = {
            "machine": platform.machine(),
            "epochs_cap": epochs,
            "augment_factor": factor,
            "commit": commit,
        }
    published = published_figures()
    for row in rows:  # the figures of today's config, never a copy kept in this script
        model, figure = published.get(row["experiment"], (None, None))
        row["published"], row["published_model"] = figure, model
    write_result(RESULTS, "zoo_accuracy", {"meta": meta, "rows": rows}, _markdown(meta, rows))
    print((RESULTS / "zoo_accuracy.md").read_text())


if __name__ == "__main__":
    main()
