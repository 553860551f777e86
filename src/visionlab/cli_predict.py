"""`visionlab predict`: classify image files with a trained model."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from visionlab import paths
from visionlab.errors import VisionlabError
from visionlab.params.common import decoding_workers


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


@click.command()
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
    help="text: one line per file; csv: path, class_N, probability_N, cam, error, jpeg_quality, note; "
    "json: a list.",
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
    from visionlab.explanations.photo_notes import CompressionScores, evaluated_current_model

    scores = None  # a checkpoint of its own has no evaluate figures to quote
    if checkpoint is None:
        if experiment is None:
            raise click.UsageError("give --experiment NAME (or --checkpoint PATH)")
        checkpoint = paths.workspace_root() / paths.model_dir(experiment) / "model.pt"
        if not checkpoint.is_file():
            click.echo(f"error: {_untrained(experiment, checkpoint)}", err=True)
            sys.exit(1)
        root = paths.workspace_root()
        scores = CompressionScores.read(root / paths.results_dir(experiment) / "metrics.json")
        if scores is not None and evaluated_current_model(root, paths.model_dir(experiment)) is False:
            scores = dataclasses.replace(scores, stale=True)
    # Imported here: torch and the model zoo take seconds to load, and `visionlab --help` should not.
    from visionlab.explanations.predict import Predictor
    from visionlab.explanations.predict_output import write_stream

    try:
        cam = cam_dir is not None or cam_beside
        predictor = Predictor.load(checkpoint, top_k, cam=cam, layer=layer, scores=scores)
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
