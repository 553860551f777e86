"""The studies' experiments on the full data sets, through the real `dvc repro`, one at a time.

The project is copied to a work folder (default ``benchmarks/work/full_scale``, outside git's
view), pointed at a mirror folder of the full archives (``benchmarks/pack_full_datasets.py``
writes one), and `dvc repro evaluate@<experiment>` runs for each chosen experiment: its whole
chain (download, prepare, augment, featurize, train, evaluate). The user's workspace is never
touched.

Full runs are long, so the script is incremental: after each experiment its row is saved to
``full_scale.json`` and the table ``full_scale.md`` is rewritten; a rerun skips experiments that
already have a result (``--rerun NAME`` repeats one) and reuses the work folder, where DVC's cache
makes finished stages free. Experiments that cannot run offline (torchvision ImageNet weights not
in the torch cache) get a row saying why.

Usage:  uv run python benchmarks/full_scale.py --mirror DIR [--experiment NAME ...] [--rerun NAME]
Writes benchmarks/results/full_scale.{json,md}.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # full_scale_tables beside this script

from full_scale_tables import (
    render_markdown,
    write_generated_blocks,
)
from provenance import source_commit

from visionlab.params import Params, load_params
from visionlab.paths import PROJECT_DIRS, PROJECT_FILES
from visionlab.reporting.collect import comparison_frame, read_datasets
from visionlab.reporting.compare import as_number
from visionlab.reporting.published import load_published
from visionlab.training import planning

REPO = Path(__file__).resolve().parents[1]
SYNCED_COMMIT = "SOURCE_COMMIT"  # in the work copy: the visionlab commit its code was synced from
# Data sets whose mirror archive is not the full public set (say so beside their figures).
NOTES = {
    "kaggle_flowers": "sample only (200 images): the full Kaggle set is not available offline",
    "cats_dogs": "public copy at 180 px, smaller than Microsoft's originals",
}


def weights_problem(params: Params, experiment: str) -> str | None:
    """Why ``experiment`` cannot run on this machine without internet, or None if it can."""
    return planning.missing_weights(params, experiment)


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
        subprocess.run(args, cwd=work, check=True, env=_env(work), capture_output=True)
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


def _env(work: Path) -> dict[str, str]:
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


def _read_json(path: Path) -> dict[str, Any]:
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
    cleaning = _read_json(project / "data" / "prepared" / dataset / "report.json")
    featurize = _read_json(project / "data" / "features" / experiment / "info.json")
    row = {
        "experiment": experiment,
        "dataset": dataset,
        "arch": cells["arch"],
        "recipe": cells["recipe"],
        "status": cells["status"],
        **_published(project, dataset, cells),
        "split_counts": cleaning.get("split_totals"),
        "featurize_seconds": as_number(featurize.get("seconds")),
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
    metrics = _read_json(project / "results" / experiment / "metrics.json")
    for prefix in ("test", "val"):  # val_<degradation>: what a robust recipe is chosen on
        row[f"{prefix}_variants"] = {
            split: as_number(values.get("accuracy"))
            for split, values in metrics.items()
            if split.startswith(f"{prefix}_") and isinstance(values, dict)
        }
    row["provenance"] = provenance(project, experiment, dataset)
    return row


def run_experiment(project: Path, experiment: str) -> dict[str, Any]:
    """`dvc repro evaluate@<experiment>` in ``project``; its row, or the reason it failed."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", f"evaluate@{experiment}"],
        cwd=project,
        env=_env(project),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = round(time.perf_counter() - started, 1)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()
        errors = [line for line in output if "error" in line.lower()] or output[-1:] or ["(no output)"]
        return {"experiment": experiment, "status": f"dvc repro failed: {errors[0].strip()[:300]}"}
    row = result_row(project, experiment)
    row["wall_seconds"] = wall
    return row


def run_seeds(
    project: Path,
    experiment: str,
    seeds: int,
    saved: Callable[[list[dict[str, Any]]], None],
    start: int = 1,
) -> list[dict[str, Any]]:
    """The experiment retrained with training seeds ``start`` to ``seeds - 1`` past its own, on
    the same split.

    Each seed is the experiment's ``train_overrides.seed`` in the copy's params.yaml and a `dvc
    repro` of its evaluate stage (featurize's cache is kept: it does not depend on the seed).
    Afterwards the first seed's outputs come back as they were (:func:`_restore`), not retrained.
    ``saved`` gets the seeds measured so far after each one, so a stopped run keeps what it measured.
    Each seed records the commit it was trained at: seeds added to a finished row may be later.
    """
    params_file = project / "params.yaml"
    original = params_file.read_text()
    before = _snapshot(project, experiment)
    first_code = training_code(project, experiment)
    base = load_params(params_file).recipe_of(experiment).seed
    found: list[dict[str, Any]] = []
    try:
        for offset in range(start, seeds):
            raw = yaml.safe_load(original)
            overrides = raw["experiments"][experiment].setdefault("train_overrides", {}) or {}
            overrides["seed"] = base + offset
            raw["experiments"][experiment]["train_overrides"] = overrides
            params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
            row = run_experiment(project, experiment)
            if row.get("status") != "done":
                raise click.ClickException(f"{experiment} seed {base + offset}: {row.get('status')}")
            found.append(
                {
                    "seed": base + offset,
                    **{
                        k: row[k] for k in ("val_accuracy", "test_accuracy", "test_macro_f1", "train_seconds")
                    },
                    "stages": row["provenance"]["stages"],
                    "commit": row["provenance"]["commit"],
                    # What of the code featurize and train ran differs from the first seed's run.
                    "code_changed": sorted(
                        path
                        for path, digest in training_code(project, experiment).items()
                        if first_code.get(path) != digest
                    ),
                }
            )
            saved(found)
    finally:
        params_file.write_text(original)
        _restore(project, experiment, before)
    return found


def training_code(project: Path, experiment: str) -> dict[str, str]:
    """The code and data featurize and train last ran on, by path, from the copy's dvc.lock: the
    resolved train params (where the seed is) left out, so two seeds' entries compare as equal
    when only the seed differs."""
    lock = yaml.safe_load((project / "dvc.lock").read_text()) if (project / "dvc.lock").is_file() else {}
    stages = (lock or {}).get("stages", {})
    found = {}
    for stage in (f"featurize@{experiment}", f"train@{experiment}"):
        for dep in stages.get(stage, {}).get("deps") or []:
            if not dep["path"].startswith("data/resolved/train/"):
                found[dep["path"]] = dep.get("md5")
    return found


def _snapshot(project: Path, experiment: str) -> dict[Path, bytes]:
    """dvc.lock and the experiment's results/ files: what DVC's cache cannot bring back."""
    kept = [project / "dvc.lock", *(p for p in (project / "results" / experiment).rglob("*") if p.is_file())]
    return {path: path.read_bytes() for path in kept}


def _restore(project: Path, experiment: str, snapshot: dict[Path, bytes]) -> None:
    """The experiment's outputs as before the extra seeds, without retraining.

    DVC's run cache keeps no stage with an uncached output (train's training.json, evaluate's
    metrics), so `dvc repro` would train the first seed again. Instead the lock file and the
    small results files are written back and `dvc checkout` takes the rest from the cache.
    """
    shutil.rmtree(project / "results" / experiment, ignore_errors=True)
    for path, data in snapshot.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    stages = [f"{stage}@{experiment}" for stage in ("featurize", "train", "evaluate")]
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "checkout", "--force", *stages],
        cwd=project,
        env=_env(project),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        click.echo(
            f"{experiment}: could not restore the first seed's outputs: {done.stderr[-500:]}", err=True
        )


def add_seeds(project: Path, row: dict[str, Any], seeds: int, save: Callable[[], None]) -> None:
    """``row`` trained with training seeds until it has ``seeds`` of them (its own first): the
    seeds it already has are kept, and ``save`` runs after each new one."""
    name = row["experiment"]
    kept = row.get("seeds") or [first_seed(row, load_params(project / "params.yaml").recipe_of(name).seed)]
    if len(kept) >= seeds:
        return

    def saved(more: list[dict[str, Any]]) -> None:
        row["seeds"] = [*kept, *more]
        row["seed_summary"] = seed_summary(row)
        save()
        click.echo(f"{name}: seed {more[-1]['seed']} test {more[-1]['test_accuracy']:.4f}")

    run_seeds(project, name, seeds, saved, start=len(kept))


def first_seed(row: dict[str, Any], seed: int) -> dict[str, Any]:
    """The row's own run as its first seed's entry."""
    first: dict[str, Any] = {"seed": seed}
    first.update({k: row[k] for k in ("val_accuracy", "test_accuracy", "test_macro_f1", "train_seconds")})
    first["stages"] = row["provenance"]["stages"]
    first["commit"] = row["provenance"].get("commit")
    return first


def seed_summary(row: dict[str, Any]) -> dict[str, Any] | None:
    """Mean and sample standard deviation of val and test accuracy over the row's seeds."""
    runs = row.get("seeds") or []
    if len(runs) < 2:
        return None
    summary: dict[str, Any] = {"seeds": len(runs)}
    for key in ("val_accuracy", "test_accuracy"):
        values = [r[key] for r in runs if r.get(key) is not None]
        summary[f"{key}_mean"] = statistics.mean(values)
        summary[f"{key}_sd"] = statistics.stdev(values)
    return summary


def _device() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def write_results(results: Path, rows: dict[str, dict[str, Any]], order: list[str], meta: dict) -> None:
    results.mkdir(parents=True, exist_ok=True)
    ordered = [rows[name] for name in order if name in rows]
    ordered += [row for name, row in rows.items() if name not in order]
    (results / "full_scale.json").write_text(json.dumps({"meta": meta, "rows": ordered}, indent=2) + "\n")
    (results / "full_scale.md").write_text(render_markdown(ordered, meta))
    if results.resolve() == (REPO / "benchmarks" / "results").resolve():
        write_generated_blocks(REPO, ordered)


@click.command()
@click.option(
    "--mirror",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="folder holding the full archives and their SHA256SUMS (needed unless --table-only)",
)
@click.option("--experiment", "experiments", multiple=True, help="experiments to run (default: all runnable)")
@click.option("--rerun", multiple=True, help="run these again even if they have a result")
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    default=REPO / "benchmarks" / "work" / "full_scale",
    show_default=True,
    help="the project copy the runs happen in (reused across runs)",
)
@click.option(
    "--results",
    type=click.Path(file_okay=False, path_type=Path),
    default=REPO / "benchmarks" / "results",
    show_default=True,
)
@click.option(
    "--seeds",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="train each experiment run with this many seeds (train.seed, +1, ...) on the same split",
)
@click.option(
    "--table-only",
    is_flag=True,
    help="rewrite full_scale.md from full_scale.json (no project, no runs): after a table change",
)
@click.option(
    "--refresh",
    is_flag=True,
    help="rebuild every finished row from the work folder's outputs (no runs), e.g. after a table change",
)
def main(
    mirror: Path | None,
    experiments: tuple[str, ...],
    rerun: tuple[str, ...],
    work: Path,
    results: Path,
    seeds: int,
    table_only: bool,
    refresh: bool,
) -> None:
    """Run the studies' experiments on the full data sets, one at a time, and tabulate them."""
    if table_only:
        saved = _read_json(results / "full_scale.json")
        (results / "full_scale.md").write_text(render_markdown(saved.get("rows", []), saved.get("meta", {})))
        write_generated_blocks(REPO, saved.get("rows", []))
        click.echo((results / "full_scale.md").read_text())
        return
    if mirror is None or not (mirror / "SHA256SUMS").is_file():
        raise click.ClickException(
            f"{mirror}: no SHA256SUMS (write one with benchmarks/pack_full_datasets.py)"
        )
    params = load_params(REPO / "params.yaml")
    unknown = [name for name in (*experiments, *rerun) if name not in params.experiments]
    if unknown:
        raise click.ClickException(f"not in params.yaml: {', '.join(unknown)}")
    names = list(experiments) or list(params.experiments)
    saved = _read_json(results / "full_scale.json")
    rows = {row["experiment"]: row for row in saved.get("rows", [])}
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "device": _device(),
        "mirror": mirror.name,
    }
    project = prepare_project(work, mirror)
    if refresh:
        for name, row in rows.items():
            if row.get("status") == "done":
                fresh = result_row(project, name)
                # A wall time belongs to the outputs it produced: kept only for the same stage hashes.
                same = (row.get("provenance") or {}).get("stages") == fresh["provenance"]["stages"]
                rows[name] = {**fresh, "wall_seconds": row.get("wall_seconds") if same else None}
        names = []
    for name in names:
        problem = weights_problem(params, name)
        if problem:
            rows[name] = {"experiment": name, "dataset": params.experiment(name).dataset, "status": problem}
            write_results(results, rows, names, meta)
            continue
        if rows.get(name, {}).get("status") == "done" and name not in rerun:
            if seeds <= len(rows[name].get("seeds") or [None]):
                click.echo(f"{name}: already measured (--rerun {name} to repeat)")
                continue
            # A finished row gets only the seeds it lacks: its first seed is not trained again.
            click.echo(f"{name}: adding seeds to the row measured at {rows[name]['provenance']['commit']}")
        else:
            click.echo(f"{name}: dvc repro evaluate@{name} ...", nl=False)
            rows[name] = run_experiment(project, name)
            click.echo(f" {rows[name]['status']}")
            # Saved before the seeds start: each later seed costs as much again and may be stopped.
            write_results(results, rows, names, meta)
        if seeds > 1 and rows[name].get("status") == "done":
            add_seeds(project, rows[name], seeds, lambda: write_results(results, rows, names, meta))
    write_results(results, rows, names, meta)
    click.echo((results / "full_scale.md").read_text())


if __name__ == "__main__":
    main()
