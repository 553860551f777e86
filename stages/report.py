"""DVC stage `report`: compare every experiment; register each data set's best model in MLflow."""

import click

from visionlab.stage import stage_main


def work(params, name):  # params: visionlab.params.Params
    # Imported once params.yaml validates (see visionlab.stage): the report pulls in torch.
    from visionlab.reporting.report_stage import report_stage

    return report_stage(params, name)


@click.command(help="Compare every experiment: reports/index.html, summary.md and the model registry.")
@click.option("--params", "params_file", default="params.yaml", show_default=True)
def main(params_file: str) -> None:
    stage_main(work, params_file, "report")


if __name__ == "__main__":
    main()
