"""The `report` stage's command line: unlike the per-item stages it takes no name."""

from __future__ import annotations

import click

from visionlab.reporting.build import report_stage
from visionlab.stage import stage_main


@click.command(help=report_stage.__doc__)
@click.option("--params", "params_file", default="params.yaml", show_default=True)
def main(params_file: str) -> None:
    stage_main(report_stage, params_file, "report")
