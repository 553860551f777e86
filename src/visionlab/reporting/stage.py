"""The `report` stage's command line: unlike the per-item stages it takes no name."""

from __future__ import annotations

import click

from visionlab.stage import stage_main


@click.command(help="Compare every experiment: reports/index.html, summary.md and the model registry.")
@click.option("--params", "params_file", default="params.yaml", show_default=True)
def main(params_file: str) -> None:
    # Imported once params.yaml validates (see visionlab.stage).
    stage_main("visionlab.reporting.build:report_stage", params_file, "report")
