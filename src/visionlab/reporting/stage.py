"""The `report` stage's command line: unlike the per-item stages it takes no name."""

from __future__ import annotations

import click

from visionlab.params import Params
from visionlab.stage import stage_main


@click.command(help="Compare every experiment: reports/index.html, summary.md and the model registry.")
@click.option("--params", "params_file", default="params.yaml", show_default=True)
def main(params_file: str) -> None:
    stage_main(_report, params_file, "report")


def _report(params: Params, name: str) -> object:
    # Imported once params.yaml validates (see visionlab.stage): the report pulls in torch.
    from visionlab.reporting.build import report_stage

    return report_stage(params, name)
