"""The ``visionlab`` command: what is not a DVC stage."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from visionlab import paths
from visionlab.cli_plan import plan
from visionlab.cli_servers import server, ui
from visionlab.errors import VisionlabError
from visionlab.params.common import decoding_workers
from visionlab.stage import configure_logging


@click.group()
def main() -> None:
    """visionlab: reproducible image-classification experiments (DVC + MLflow)."""
    configure_logging()


main.add_command(ui)
main.add_command(server)
main.add_command(plan)


@main.group()
def data() -> None:
    """Look after the data sets."""


@data.command()
@click.option("--dataset", required=True, help="A prepared data set (run its prepare stage first).")
@click.option("--count", default=48, show_default=True, help="Images on the contact sheet.")
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), default=Path("reports/review"), show_default=True
)
@click.option("--image-size", default=224, show_default=True)
def review(dataset: str, count: int, out_dir: Path, image_size: int) -> None:
    """Contact sheet of the images least like the rest of their class, to curate exclusions."""
    from visionlab.params import load_params

    try:
        # The name first: a typo is answered before torch and the model load (seconds).
        card = load_params(paths.workspace_root() / "params.yaml").dataset(dataset)
        from visionlab.evaluation.review import review_dataset

        sheet, table = review_dataset(card, dataset, count, out_dir, image_size)
    except VisionlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"contact sheet: {sheet}\nall scores:    {table}")
    click.echo(
        "Copy the `exclusion` entries of the images that do not belong (the captions on the sheet) "
        "into the data set's exclusion list (datasets.<name>.exclusions)."
    )


@data.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--workers", default=0, show_default=True, help="Processes checking images (0: every core).")
def inspect(folder: Path, workers: int) -> None:
    """What a folder of photos holds (FOLDER/<class>/*, or train/ val/ test/ inside), before training."""
    from visionlab.data.folder_survey import render, survey

    try:
        click.echo(render(survey(folder, workers=workers)))
    except VisionlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@data.command()
@click.argument("name")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--like",
    "likes",
    multiple=True,
    metavar="EXPERIMENT",
    help="Also add NAME-<suffix>: this experiment's model and recipe on the new data (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Print what would be added; write nothing.")
@click.option(
    "--params", "params_file", default="params.yaml", show_default=True, type=click.Path(path_type=Path)
)
@click.option("--workers", default=0, show_default=True, help="Processes checking images (0: every core).")
def add(
    name: str, folder: Path, likes: tuple[str, ...], dry_run: bool, params_file: Path, workers: int
) -> None:
    """Make FOLDER the data set NAME in params.yaml, read in place.

    FOLDER holds <class>/* folders, or train/ val/ test/ folders of them; or give a CSV of
    path,label[,split] rows instead of a folder.
    """
    import yaml

    from visionlab.atomic import atomic_write_text
    from visionlab.data.folder_card import apply_addition, describe, plan_addition
    from visionlab.data.folder_survey import render, survey

    try:
        text = params_file.read_text(encoding="utf-8")
        found = survey(folder, workers=workers)
        click.echo(render(found))
        addition = plan_addition(yaml.safe_load(text), name, found, list(likes))
        updated = apply_addition(text, addition)
        if not dry_run:
            atomic_write_text(params_file, updated)
    except (VisionlabError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(
        ("would add (--dry-run, nothing written) to " if dry_run else "added to ")
        + describe(addition, params_file)
    )


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
    for registration in files.registrations.values():
        if registration.skipped:
            click.echo(f"registry {registration.name}: not updated ({registration.skipped})")
        else:
            state = "new version" if registration.changed else "unchanged"
            click.echo(
                f"registry models:/{registration.name}@best -> version {registration.version} "
                f"({registration.experiment}, {state})"
            )


def _untrained(experiment: str, checkpoint: Path) -> str:
    """Why ``experiment`` has no model: a name params.yaml lacks (with the known names) or not trained."""
    from visionlab.params import load_params, unknown_name

    try:
        known = load_params(paths.workspace_root() / "params.yaml").experiments
    except VisionlabError:
        known = None  # a broken params.yaml: say what we can about the model file
    if known is not None and experiment not in known:
        hint = unknown_name(experiment, known)
        return f"--experiment {experiment}: no such experiment in params.yaml{hint}"
    return (
        f"{checkpoint}: experiment {experiment!r} has no trained model; "
        f"run `uv run dvc repro train@{experiment}` or pass --checkpoint"
    )


@main.command()
@click.option("--experiment", default=None, help="Use data/models/<experiment>/model.pt.")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="A model.pt to use instead of the experiment's.",
)
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--cam-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a Grad-CAM overlay of the best class per image into this folder.",
)
@click.option(
    "--cam",
    "cam_beside",
    is_flag=True,
    help="Write each image's Grad-CAM overlay beside it, as <name>-gradcam.png.",
)
@click.option("--layer", default=None, help="Grad-CAM layer by module name (default: the model's choice).")
@click.option(
    "--alpha",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Heatmap opacity in the overlays.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "csv", "json"]),
    default="text",
    show_default=True,
    help="text: one line per file; csv: path, class_N, probability_N, cam, error; json: a list.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the results to this file instead of stdout.",
)
@click.option(
    "--workers",
    # On 2 cores decoding workers take cores from the model: in-process was faster there
    # (benchmarks/results/predict_speed.md), so workers only where cores are to spare.
    default=decoding_workers("auto"),
    show_default=True,
    type=click.IntRange(min=0),
    help="Processes decoding images while the model runs (0: decode in this process).",
)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
def predict(
    experiment: str | None,
    checkpoint: Path | None,
    top_k: int,
    cam_dir: Path | None,
    cam_beside: bool,
    layer: str | None,
    alpha: float,
    fmt: str,
    output: Path | None,
    workers: int,
    inputs: tuple[Path, ...],
) -> None:
    """Classify image files (or every image under folders) with a trained model.

    Prints one result per file, failures included; exits 1 if any file failed.
    """
    if cam_dir is not None and cam_beside:
        raise click.UsageError("give --cam (overlays beside the images) or --cam-dir DIR, not both")
    if checkpoint is None:
        if experiment is None:
            raise click.UsageError("give --experiment NAME (or --checkpoint PATH)")
        checkpoint = paths.workspace_root() / paths.model_dir(experiment) / "model.pt"
        if not checkpoint.is_file():
            click.echo(f"error: {_untrained(experiment, checkpoint)}", err=True)
            sys.exit(1)
    # Imported here: torch and the model zoo take seconds to load, and `visionlab --help` should not.
    from visionlab.explanations.predict import Predictor
    from visionlab.explanations.predict_output import write_stream

    try:
        predictor = Predictor.load(checkpoint, top_k, cam=cam_dir is not None or cam_beside, layer=layer)
        results = predictor.stream(list(inputs), cam_dir, cam_beside, alpha, workers)
        # Each result is printed (or written) as its batch finishes: memory holds one batch.
        count, failed = write_stream(results, fmt, predictor.k, output, click.echo)  # type: ignore[arg-type]
    except VisionlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        if output is None:
            raise
        click.echo(f"error: {output}: cannot write the results ({exc.strerror})", err=True)
        sys.exit(1)
    if not count:
        click.echo("error: no image files among the inputs", err=True)
        sys.exit(1)
    if output is not None:
        click.echo(f"{count} results written to {output}", err=True)
    if failed:
        click.echo(f"{failed} of {count} files failed", err=True)
        sys.exit(1)


# --- visionlab doctor: the checks live in visionlab/doctor.py ------------------------------------


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

    from visionlab.reporting.compare import render, rows_from_exp_show, rows_from_full_scale

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
        rows += rows_from_exp_show(json.loads(shown.stdout or "[]"))
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


if __name__ == "__main__":
    main()
