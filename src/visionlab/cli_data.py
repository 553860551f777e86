"""`visionlab data`: look after the data sets (review, inspect, add)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from visionlab import paths
from visionlab.errors import VisionlabError


@click.group()
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
