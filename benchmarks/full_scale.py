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

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the modules beside this script

from full_scale_project import REPO, prepare_project, read_json, result_row, run_experiment
from full_scale_seeds import add_seeds
from full_scale_tables import render_markdown, write_generated_blocks

from visionlab.params import Params, load_params
from visionlab.training import planning


def weights_problem(params: Params, experiment: str) -> str | None:
    """Why ``experiment`` cannot run on this machine without internet, or None if it can."""
    return planning.missing_weights(params, experiment)


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
        saved = read_json(results / "full_scale.json")
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
    saved = read_json(results / "full_scale.json")
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
            measured = (rows[name].get("provenance") or {}).get("commit") or "an unrecorded commit"
            click.echo(f"{name}: adding seeds to the row measured at {measured}")
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
