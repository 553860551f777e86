"""Training seeds of a full-scale row: the experiment retrained with other seeds on the same
split, in the work copy, its first seed's outputs put back afterwards without retraining.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml
from full_scale_project import REPO, run_env, run_experiment

from visionlab.params import load_params

# What each seed records of its run (epoch_seconds: absent from rows measured before it was read).
SEED_FIGURES = ("val_accuracy", "test_accuracy", "test_macro_f1", "train_seconds", "epoch_seconds")


def run_seeds(
    project: Path,
    experiment: str,
    seeds: int,
    saved: Callable[[list[dict[str, Any]]], None],
    start: int = 1,
    first: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The experiment retrained with training seeds ``start`` to ``seeds - 1`` past its own, on
    the same split.

    Each seed is the experiment's ``train_overrides.seed`` in the copy's params.yaml and a `dvc
    repro` of its evaluate stage (featurize's cache is kept: it does not depend on the seed).
    Afterwards the first seed's outputs come back as they were (:func:`_restore`), not retrained.
    ``saved`` gets the seeds measured so far after each one, so a stopped run keeps what it measured.
    Each seed records the commit it was trained at (seeds added to a finished row may be later)
    and what featurize and train ran differently from the first seed's run (:func:`code_changes`).
    ``first``: the first seed's entry (its commit and stage hashes), when it may have run elsewhere.
    """
    params_file = project / "params.yaml"
    original = params_file.read_text()
    before = _snapshot(project, experiment)
    # The copy's dvc.lock speaks for the first seed only where it holds that seed's trained model.
    here = first is None or (first.get("stages") or {}).get(f"train@{experiment}") == _locked_model(
        project, experiment
    )
    first_code = training_code(project, experiment) if here else {}
    first_commit = first.get("commit") if first else None
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
                    **{k: row.get(k) for k in SEED_FIGURES},
                    "stages": row["provenance"]["stages"],
                    "commit": row["provenance"]["commit"],
                    **code_changes(
                        first_code,
                        training_code(project, experiment),
                        first_commit,
                        row["provenance"]["commit"],
                    ),
                }
            )
            saved(found)
    finally:
        params_file.write_text(original)
        _restore(project, experiment, before)
    return found


def _lock_stages(project: Path) -> dict[str, Any]:
    lock = yaml.safe_load((project / "dvc.lock").read_text()) if (project / "dvc.lock").is_file() else {}
    return (lock or {}).get("stages", {})


def _locked_model(project: Path, experiment: str) -> str | None:
    """The output hash of the experiment's train stage in the copy's dvc.lock, if it ran here."""
    outs = _lock_stages(project).get(f"train@{experiment}", {}).get("outs") or []
    return outs[0].get("md5") if outs else None


def training_code(project: Path, experiment: str) -> dict[str, str]:
    """The code and data featurize and train last ran on, by path, from the copy's dvc.lock: the
    resolved train params (where the seed is) left out, so two seeds' entries compare as equal
    when only the seed differs."""
    stages = _lock_stages(project)
    found = {}
    for stage in (f"featurize@{experiment}", f"train@{experiment}"):
        for dep in stages.get(stage, {}).get("deps") or []:
            if not dep["path"].startswith("data/resolved/train/"):
                found[dep["path"]] = dep.get("md5")
    return found


def code_changes(
    first: dict[str, str],
    now: dict[str, str],
    first_commit: str | None,
    commit: str | None,
    repo: Path = REPO,
) -> dict[str, Any]:
    """What featurize and train ran differently from the first seed's run.

    Where the first seed's run is in the copy (``first``: its dvc.lock entries), every code and data
    input is compared by hash. Where it is not (it ran in another work folder), the code is compared
    by git between the two commits and the data is not (``code_compared: git``); with a commit
    unknown or not clean, nothing can be said (``code_changed: None``).
    """
    if first:
        changed = sorted(path for path, digest in now.items() if first.get(path) != digest)
        return {"code_changed": changed, "code_compared": "dvc.lock"}
    code = [path for path in now if path.startswith(("src/", "stages/"))]
    clean = [c for c in (first_commit, commit) if c and not c.endswith("-dirty")]
    if len(clean) < 2 or not code:
        return {"code_changed": None, "code_compared": None}
    done = subprocess.run(
        ["git", "diff", "--name-only", clean[0], clean[1], "--", *code],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"code_changed": None, "code_compared": None}
    return {"code_changed": sorted(done.stdout.split()), "code_compared": "git"}


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
        env=run_env(project),
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

    run_seeds(project, name, seeds, saved, start=len(kept), first=kept[0])


def first_seed(row: dict[str, Any], seed: int) -> dict[str, Any]:
    """The row's own run as its first seed's entry."""
    first: dict[str, Any] = {"seed": seed}
    first.update({k: row.get(k) for k in SEED_FIGURES})
    made = row.get("provenance") or {}  # rows recorded before provenance have none: nothing to compare
    first["stages"] = made.get("stages")
    first["commit"] = made.get("commit")
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
