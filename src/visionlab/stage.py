"""Shared entry logic of the stage scripts: logging, params validation and user-facing errors.

The stage scripts import their work module inside ``work``, so it loads only after params.yaml and
the stage's target name validate: the work modules pull in torch (10-30 s on a busy machine), and a
typo deserves an answer in a second.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from visionlab.errors import VisionlabError
from visionlab.params import Params, load_params, trace
from visionlab.privacy import no_telemetry


def configure_logging() -> None:
    no_telemetry()  # every entry point comes through here before MLflow is imported
    logging.basicConfig(
        level=os.environ.get("VISIONLAB_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # MLflow's store migrations and per-call chatter drown the stage's own progress.
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


Work = Callable[[Params, str], Any]


def check_target(params: Params, target: str, name: str) -> None:
    """Fail fast, before any heavy import, when ``name`` is not in params.yaml."""
    if target == "experiment":
        params.experiment(name)
    elif target == "dataset":
        params.dataset(name)


def stage_main(work: Work, params_file: str, name: str, target: str | None = None) -> None:
    """Validate params.yaml, run ``work(params, name)``, and turn user errors into one message."""
    configure_logging()
    trace.start(Path(sys.argv[0]).stem, name)  # only with VISIONLAB_TRACE_PARAMS (params/trace.py)
    try:
        params = load_params(params_file)
        if target is not None:
            check_target(params, target, name)
        work(params, name)
    except VisionlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def stage_command(work: Work, target: str) -> click.Command:
    """A click command ``--<target> NAME [--params FILE]`` that runs ``work`` for one item."""

    @click.command(help=work.__doc__)
    @click.option(f"--{target}", "name", required=True, help=f"Name of the {target} in params.yaml.")
    @click.option("--params", "params_file", default="params.yaml", show_default=True)
    def command(name: str, params_file: str) -> None:
        stage_main(work, params_file, name, target)

    return command
