"""The ``visionlab`` command: what is not a DVC stage."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from visionlab.errors import VisionlabError
from visionlab.stage import configure_logging


@click.group()
def main() -> None:
    """visionlab: reproducible image-classification experiments (DVC + MLflow)."""
    configure_logging()


@main.command()
@click.option("--port", default=5000, show_default=True)
def ui(port: int) -> None:
    """Start the MLflow UI on 127.0.0.1 against the project's tracking store."""
    import os
    import subprocess

    from visionlab.tracking import tracking_uri
    from visionlab.tracking.mlflow_run import default_artifact_location

    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri()]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    artifacts = default_artifact_location()
    if artifacts:
        command += ["--default-artifact-root", artifacts]
    click.echo(f"MLflow UI for {tracking_uri()} at http://127.0.0.1:{port} (Ctrl-C to stop)")
    if os.name == "posix":
        os.execv(sys.executable, command)  # Ctrl-C and signals go straight to the server
    sys.exit(subprocess.run(command, check=False).returncode)


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
    from visionlab.data.review import review_dataset

    try:
        sheet, table = review_dataset(dataset, count, out_dir, image_size)
    except VisionlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"contact sheet: {sheet}\nall scores:    {table}")
    click.echo(
        "Add the images that do not belong to the data set's exclusion list (datasets.<name>.exclusions)."
    )


if __name__ == "__main__":
    main()
