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
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import yaml

from visionlab.errors import MissingArtifactError
from visionlab.evaluation.intervals import correct_count, verdict, wilson
from visionlab.models import efficientnet_lite, weights
from visionlab.params import Params, load_params
from visionlab.reporting.collect import comparison_frame, read_datasets
from visionlab.reporting.published import load_published

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "pyproject.toml"]
PROJECT_DIRS = ["stages", "src", "config", ".dvc"]
SYNCED_COMMIT = "SOURCE_COMMIT"  # in the work copy: the visionlab commit its code was synced from
# Data sets whose mirror archive is not the full public set (say so beside their figures).
NOTES = {
    "kaggle_flowers": "sample only (200 images): the full Kaggle set is not available offline",
    "cats_dogs": "public copy at 180 px, smaller than Microsoft's originals",
}


def weights_problem(params: Params, experiment: str) -> str | None:
    """Why ``experiment`` cannot run on this machine without internet, or None if it can."""
    spec = params.model_of(experiment)
    if spec.weights != "imagenet":
        return None
    if spec.arch in efficientnet_lite.VARIANTS:
        try:
            efficientnet_lite.weights_file(spec.arch)
        except MissingArtifactError as exc:
            return str(exc)
        return None
    if spec.arch in weights.TORCHVISION_WEIGHTS:
        path = weights.weights_path(spec.arch)
        if not path.is_file():
            return f"{spec.arch} ImageNet weights not in the torch cache ({path.name})"
    return None


def source_commit() -> str:
    """The visionlab commit the rows are measured on; ``-dirty`` when tracked files differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no")
    return f"{commit}-dirty" if changed else commit


def prepare_project(work: Path, mirror: Path) -> Path:
    """The work copy, synced to this checkout's code and params (the mirror set) and committed.

    Synced before every run, so a row is never measured on an older copy's code; DVC's cache in the
    copy keeps every stage whose code and params did not change.
    """
    fresh = not (work / "dvc.yaml").is_file()
    work.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
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
    synced = source_commit()
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


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _published(project: Path, dataset: str, cells: dict[str, Any]) -> dict[str, Any]:
    """The study's figure for this arch; for a model no study trained, the study's best on the set."""
    if _number(cells["published_accuracy"]) is not None:
        return {
            "published_model": cells["published_model"] or None,
            "published_accuracy": _number(cells["published_accuracy"]),
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
        "featurize_seconds": _number(featurize.get("seconds")),
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
        row[key] = _number(cells[key])
    # The interval and the count behind it, and every degraded or flipped copy of test evaluate scored.
    row["test_images"] = _number(cells["test_images"])
    low, high = _number(cells["test_accuracy_ci_low"]), _number(cells["test_accuracy_ci_high"])
    row["test_ci95"] = [low, high] if low is not None and high is not None else None
    metrics = _read_json(project / "results" / experiment / "metrics.json")
    row["test_variants"] = {
        split: _number(values.get("accuracy"))
        for split, values in metrics.items()
        if split.startswith("test_") and isinstance(values, dict)
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


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def interval_of(row: dict[str, Any]) -> tuple[float, float] | None:
    """The row's 95% Wilson interval: as measured, else from its accuracy and test count (rows
    recorded before evaluate wrote intervals)."""
    if row.get("test_ci95"):
        low, high = row["test_ci95"]
        return float(low), float(high)
    total = row.get("test_images") or (row.get("split_counts") or {}).get("test")
    if row.get("test_accuracy") is None or not total:
        return None
    return wilson(correct_count(row["test_accuracy"], int(total)), int(total))


def study_sentences(rows: list[dict[str, Any]]) -> list[str]:
    """Per data set: our full-scale row chosen on validation, against the study's best figure."""
    lines = []
    done = [r for r in rows if r.get("status") == "done" and r.get("published_accuracy") is not None]
    for dataset in sorted({r["dataset"] for r in done}):
        candidates = sorted((r for r in done if r["dataset"] == dataset), key=lambda r: r["experiment"])
        chosen = max(candidates, key=lambda r: r.get("val_accuracy") or -1.0)
        interval = interval_of(chosen)
        if interval is None:
            continue
        figure, study = chosen["published_accuracy"], chosen["published_model"]
        said = verdict(interval[0], interval[1], figure)
        outcome = {
            "better beyond chance": "we beat the study beyond chance",
            "worse beyond chance": "the study is better beyond chance",
            "within chance": "not a win beyond chance: the study's figure lies inside our interval",
        }.get(said, said)
        val, test = _pct(chosen.get("val_accuracy")), _pct(chosen["test_accuracy"])
        lines.append(
            f"- **{dataset}**: {chosen['experiment']} (chosen on validation: {val}% val) tests {test}% "
            f"(95% interval {_pct(interval[0])}-{_pct(interval[1])}%) against {_pct(figure)}% ({study}): "
            f"{outcome}."
        )
    return lines


README_BEGIN = (
    "<!-- full-scale table: written from benchmarks/results/full_scale.json by "
    "`uv run python benchmarks/full_scale.py --table-only`; do not edit by hand -->"
)
README_END = "<!-- end of the full-scale table -->"
VARIANTS = {"test_tta_hflip": "hflip TTA", "test_downscale_128": "at 128 px", "test_jpeg_30": "at JPEG 30"}


def render_readme_table(rows: list[dict[str, Any]]) -> str:
    """The README's results block: every finished row, its interval and verdict, its commit."""
    lines = [
        README_BEGIN,
        "| experiment | test acc. | 95% interval | study | beyond chance? | val. acc. | macro F1 "
        + "".join(f"| {label} " for label in VARIANTS.values())
        + "| train s | train / val / test | commit |",
        "|---|---:|---:|---:|---|---:|---:|" + "---:|" * len(VARIANTS) + "---:|---|---|",
    ]
    for row in rows:
        if row.get("status") != "done":
            continue
        published = row.get("published_accuracy")
        interval = interval_of(row)
        study = f"{_pct(published)}% ({row['published_model']})" if published is not None else "–"
        chance = verdict(*interval, published) if interval and published is not None else "–"
        shown = f"{_pct(interval[0])}–{_pct(interval[1])}%" if interval else "–"
        variants = row.get("test_variants") or {}
        cells = "".join(
            f"| {_pct(variants[key])}% " if variants.get(key) is not None else "| – " for key in VARIANTS
        )
        splits = row.get("split_counts") or {}
        counts = " / ".join(f"{splits.get(s, 0):,}" for s in ("train", "val", "test")) if splits else "–"
        f1 = "–" if row.get("test_macro_f1") is None else f"{row['test_macro_f1']:.3f}"
        commit = ((row.get("provenance") or {}).get("commit") or "–")[:7]
        star = " *" if row.get("note") else ""
        lines.append(
            f"| `{row['experiment']}`{star} | {_pct(row['test_accuracy'])}% | {shown} | {study} | {chance} "
            f"| {_pct(row.get('val_accuracy'))}% | {f1} {cells}| {_seconds(row.get('train_seconds'))} "
            f"| {counts} | {commit} |"
        )
    notes = sorted({(r["dataset"], r["note"]) for r in rows if r.get("status") == "done" and r.get("note")})
    lines += [""] + [f"\\* {dataset}: {note}." for dataset, note in notes] if notes else []
    lines += ["", *study_sentences(rows), README_END]
    return "\n".join(lines)


def write_readme_table(readme: Path, rows: list[dict[str, Any]]) -> None:
    text = readme.read_text()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise click.ClickException(
            f"{readme}: no full-scale table markers ({README_BEGIN!r} ... {README_END!r})"
        )
    readme.write_text(text[:start] + render_readme_table(rows) + text[end + len(README_END) :])


def render_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The results table: one row per experiment, figures beside the study's, or why not run."""
    lines = [
        "# The studies' experiments on the full data sets",
        "",
        f"Real `dvc repro evaluate@<experiment>` per experiment on {meta.get('machine', '?')} "
        f"({meta.get('cpus', '?')} CPUs, device {meta.get('device', '?')}); data from the mirror "
        f'`{meta.get("mirror", "?")}`. Accuracies in %; "vs study" is ours minus the study\'s, in points; '
        "train s is the training stage's own clock, wall s the whole chain of the run that produced the row.",
        "",
        'The 95% interval is Wilson\'s, from the test count; "beyond chance?" says whether the '
        "study's figure lies outside it. Commit: the visionlab commit the row was measured on "
        '("-": recorded before rows named one).',
        "",
        "| experiment | data set | test acc | 95% interval | study | vs study | beyond chance? | val acc "
        "| train acc | macro F1 | epochs | train s | featurize s | img/s | wall s "
        "| train / val / test images | commit |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    notes: dict[str, str] = {}
    for row in rows:
        if row.get("status") != "done":
            lines.append(
                f"| {row['experiment']} | {row.get('dataset', '')} | not run: {row.get('status')} |"
                + " |" * 14
            )
            continue
        published = row.get("published_accuracy")
        study = f"{_pct(published)} ({row['published_model']})" if published is not None else ""
        delta = "" if published is None else f"{100 * (row['test_accuracy'] - published):+.2f}"
        splits = row.get("split_counts") or {}
        counts = " / ".join(f"{splits.get(s, 0):,}" for s in ("train", "val", "test")) if splits else ""
        epochs = "" if row.get("epochs") is None else f"{row['epochs']:.0f}"
        speed = "" if row.get("images_per_second") is None else f"{row['images_per_second']:.1f}"
        f1 = "" if row.get("test_macro_f1") is None else f"{row['test_macro_f1']:.4f}"
        interval = interval_of(row)
        shown = f"{_pct(interval[0])}-{_pct(interval[1])}" if interval else ""
        chance = verdict(*interval, published) if interval and published is not None else ""
        commit = ((row.get("provenance") or {}).get("commit") or "-")[:12]
        marker = ""
        if row.get("note"):
            notes[row["dataset"]] = row["note"]
            marker = " *"
        lines.append(
            f"| {row['experiment']} | {row['dataset']}{marker} | {_pct(row['test_accuracy'])} | {shown} "
            f"| {study} | {delta} | {chance} "
            f"| {_pct(row.get('val_accuracy'))} | {_pct(row.get('train_accuracy'))} "
            f"| {f1} | {epochs} "
            f"| {_seconds(row.get('train_seconds'))} | {_seconds(row.get('featurize_seconds'))} | {speed} "
            f"| {_seconds(row.get('wall_seconds'))} | {counts} | {commit} |"
        )
    if notes:
        lines += [""] + [f"\\* {dataset}: {note}." for dataset, note in sorted(notes.items())]
    sentences = study_sentences(rows)
    if sentences:
        lines += ["", "Against each study (our row chosen on validation, never on test):", "", *sentences]
    return "\n".join(lines) + "\n"


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
        write_readme_table(REPO / "README.md", ordered)


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
    table_only: bool,
    refresh: bool,
) -> None:
    """Run the studies' experiments on the full data sets, one at a time, and tabulate them."""
    if table_only:
        saved = _read_json(results / "full_scale.json")
        (results / "full_scale.md").write_text(render_markdown(saved.get("rows", []), saved.get("meta", {})))
        write_readme_table(REPO / "README.md", saved.get("rows", []))
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
            click.echo(f"{name}: already measured (--rerun {name} to repeat)")
            continue
        click.echo(f"{name}: dvc repro evaluate@{name} ...", nl=False)
        rows[name] = run_experiment(project, name)
        click.echo(f" {rows[name]['status']}")
        write_results(results, rows, names, meta)
    write_results(results, rows, names, meta)
    click.echo((results / "full_scale.md").read_text())


if __name__ == "__main__":
    main()
