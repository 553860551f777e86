"""DVC stage `resolve`: the records later stages depend on instead of raw params.

See visionlab.data.resolve_stage.
"""

import click

from visionlab.stage import stage_main


def work(params, name):  # params: visionlab.params.Params
    from visionlab.data.resolve_stage import resolve_stage

    return resolve_stage(params, name)


@click.command(
    help="Write data/resolved: each data set's archive pin and each experiment's featurize inputs."
)
@click.option("--params", "params_file", default="params.yaml", show_default=True)
def main(params_file: str) -> None:
    stage_main(work, params_file, "resolve")


if __name__ == "__main__":
    main()
