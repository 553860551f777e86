"""Shared entry logic of the stage scripts: logging, params validation and user-facing errors."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from visionlab.errors import VisionlabError
from visionlab.params import Params, load_params


def configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("VISIONLAB_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # MLflow's store migrations and per-call chatter drown the stage's own progress.
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stage_main(work: Callable[[Params, str], Any], params_file: str, name: str) -> None:
    """Validate params.yaml, run ``work(params, name)``, and turn user errors into one message."""
    configure_logging()
    try:
        params = load_params(params_file)
        work(params, name)
    except VisionlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def stage_command(work: Callable[[Params, str], Any], target: str) -> click.Command:
    """A click command ``--<target> NAME [--params FILE]`` that runs ``work`` for one item."""

    @click.command(help=work.__doc__)
    @click.option(f"--{target}", "name", required=True, help=f"Name of the {target} in params.yaml.")
    @click.option("--params", "params_file", default="params.yaml", show_default=True)
    def command(name: str, params_file: str) -> None:
        stage_main(work, params_file, name)

    return command
