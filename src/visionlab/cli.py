"""The ``visionlab`` command: what is not a DVC stage."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from visionlab import paths, quick_exit
from visionlab.cli_data import data
from visionlab.cli_plan import plan
from visionlab.cli_predict import predict
from visionlab.cli_servers import server, ui
from visionlab.errors import VisionlabError
from visionlab.stage import configure_logging


@click.group()
def main() -> None:
    """visionlab: reproducible image-classification experiments (DVC + MLflow)."""
    configure_logging()


main.add_command(ui)
main.add_command(server)
main.add_command(plan)
main.add_command(data)
main.add_command(predict)


@main.command()
@click.option(
    "--params",
    "params_file",
    type=click.Path(path_type=Path),
    default=None,
    help="params.yaml to read  [default: the project's]",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the report  [default: <project>/reports]",
)
@click.option(
    "--register/--no-register",
    default=None,
    help="Update the MLflow model registry  [default: params.yaml report.register_best]",
)
def report(params_file: Path | None, out_dir: Path | None, register: bool | None) -> None:
    """Compare every experiment that has results: reports/index.html and summary.md.

    The same as the DVC stage `report`, outside DVC (so `dvc status` will then call the stage
    changed); experiments without results are listed as not run yet.
    """
    from visionlab.params import load_params
    from visionlab.reporting import build_report

    root = paths.workspace_root()
    try:
        params = load_params(params_file or root / "params.yaml")
        files = build_report(params, out_dir or root / "reports", root=root, register=register)
    except VisionlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for path in files.paths():
        click.echo(path)
    for registration in (r for registered in files.registrations.values() for r in registered):
        where = f"{registration.name}@{registration.alias}"
        if registration.skipped:
            click.echo(f"registry {where}: not updated ({registration.skipped})")
        else:
            state = "new version" if registration.changed else "unchanged"
            click.echo(
                f"registry models:/{where} -> version {registration.version} "
                f"({registration.experiment}, {state}; chosen on {registration.chosen_on})"
            )


# --- visionlab doctor: the checks live in visionlab/doctor/ ---------------------------------------


@main.command()
def doctor() -> None:
    """Check the environment: tools, project, params, MLflow store, weights, GPU, disk.

    One line per check (OK, WARN or FAIL, with a fix); exits 1 if any check fails.
    """
    from visionlab.doctor import FAIL, WARN, doctor_checks

    root = paths.workspace_root()
    click.echo(f"visionlab doctor: {root}")
    checks = doctor_checks(root)
    for check in checks:
        click.echo(check.line())
    failed = [c for c in checks if c.status == FAIL]
    warned = [c for c in checks if c.status == WARN]
    click.echo(f"{len(checks) - len(failed) - len(warned)} OK, {len(warned)} WARN, {len(failed)} FAIL")
    if failed:
        sys.exit(1)


@main.command()
@click.option(
    "--experiment",
    "patterns",
    multiple=True,
    help="Only pipeline experiments matching this shell pattern, e.g. 'flowers-*' (repeatable).",
)
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=Path("benchmarks/results/full_scale.json"),
    show_default=True,
    help="Committed full-scale results to set beside the DVC experiments (skipped when absent).",
)
@click.option("--no-dvc", is_flag=True, help="Only the committed results: do not ask DVC.")
@click.option(
    "-n", "--num", default=1, show_default=True, help="Baseline commits to include (dvc exp show -n)."
)
@click.option("--width", default=120, show_default=True, type=click.IntRange(min=80))
def compare(patterns: tuple[str, ...], results: Path, no_dvc: bool, num: int, width: int) -> None:
    """One line per experiment: what it changed, val and test accuracy with the test's 95%
    interval, training seconds; for DVC experiments (`dvc exp show`) and committed results alike.

    A DVC experiment contributes the pipeline experiments it recomputed, with the params it changed
    against its baseline commit; the baseline commit contributes every experiment it has results for.
    """
    import fnmatch
    import json
    import subprocess

    from visionlab.reporting.compare import render, rows_from_exp_show, rows_from_full_scale, with_paired

    root = paths.workspace_root()
    rows = []
    if not no_dvc:
        shown = subprocess.run(
            [sys.executable, "-m", "dvc", "exp", "show", "--json", "-n", str(num)],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        if shown.returncode != 0:
            click.echo(f"error: `dvc exp show` failed: {shown.stderr.strip()[-500:]}", err=True)
            sys.exit(1)
        variants = rows_from_exp_show(json.loads(shown.stdout or "[]"))
        if any(row.baseline_evaluated for row in variants):  # something to pair: open DVC's cache
            variants = with_paired(variants, _cached_answers(root))
        rows += variants
    committed = results if results.is_absolute() else root / results
    if committed.is_file():
        try:
            rows += rows_from_full_scale(json.loads(committed.read_text()))
        except (ValueError, AttributeError, KeyError, TypeError) as exc:
            click.echo(f"error: {committed}: not a full_scale.json results file ({exc})", err=True)
            sys.exit(1)
    if patterns:
        rows = [r for r in rows if any(fnmatch.fnmatchcase(r.experiment, p) for p in patterns)]
    if not rows:
        click.echo("no results yet: run `uv run dvc repro` or `uv run dvc exp run` first", err=True)
        sys.exit(1)
    click.echo(render(rows, width), nl=False)


def _cached_answers(root: Path) -> Callable[[str], dict[str, bool] | None]:
    """Image -> right, by the hash of an evaluate output, from the project's DVC cache (where DVC
    keeps every experiment's outputs, the baseline's too); None for an output it no longer holds."""
    import functools

    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from visionlab.evaluation.answers import PREDICTIONS, cached_files, read_answers

    try:
        with Repo(str(root)) as repo:
            cache = Path(repo.cache.local.path)
    except (DvcException, OSError):  # no cache to read: the table stands without the paired tests
        return lambda _hash: None

    @functools.cache
    def answers(directory_hash: str) -> dict[str, bool] | None:
        files = cached_files(cache, directory_hash)
        found = read_answers(files[PREDICTIONS]) if files else None
        return None if found is None else {str(image): bool(right) for image, right in found.items()}

    return answers


@main.command()
@click.option("--stages", "list_stages", is_flag=True, help="Name each data set's stages left to run.")
@click.option("--width", default=120, show_default=True, type=click.IntRange(min=60))
def status(list_stages: bool, width: int) -> None:
    """`dvc status` per data set: how many stages each has, how many are left to run, and why
    (never run, code, params <keys>, needs <an upstream output>, outputs missing)."""
    from visionlab.params import load_params
    from visionlab.reporting.pipeline_status import read_pipeline_state, render, summarize

    root = paths.workspace_root()
    try:
        params = load_params(root / "params.yaml")
    except VisionlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    state = read_pipeline_state(root)
    from visionlab.training.planning import unavailable

    datasets = {name: exp.dataset for name, exp in params.experiments.items()}
    blocked = {name: why for name in params.datasets if (why := unavailable(params, name))}
    groups = summarize(state.stages, state.changed, set(state.locked), datasets, blocked)
    click.echo(render(groups, width, list_stages), nl=False)


@main.command()
def unlock() -> None:
    """After a crash: remove the DVC lock entries of `dvc repro` runs that no longer run.

    An entry whose process still runs DVC is kept (and named): wait for it, or stop it first.
    """
    from visionlab.dvc_locks import clear_stale

    try:
        removed, kept = clear_stale(paths.workspace_root())
    except VisionlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for holder in removed:
        click.echo(
            f"removed: {holder.mode} lock on {holder.path} of PID {holder.pid} ({holder.cmd}), not running"
        )
    for holder in kept:
        click.echo(
            f"kept:    {holder.mode} lock on {holder.path} of PID {holder.pid} ({holder.cmd}), still running"
        )
    if not removed and not kept:
        click.echo("no DVC locks: nothing to do")
    sys.exit(1 if kept else 0)


def run() -> None:
    """The ``visionlab`` script: ``main``, then, where the command asked for it
    (:mod:`visionlab.quick_exit`), an exit without the interpreter's second-long teardown."""
    try:
        main()
    except SystemExit as exc:
        if quick_exit.requested():
            quick_exit.leave(exc)
        raise


if __name__ == "__main__":
    run()
