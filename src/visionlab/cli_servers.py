"""``visionlab ui`` and ``visionlab server``: the MLflow UI on the project store, the team server."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from visionlab.errors import VisionlabError
from visionlab.privacy import no_telemetry


def ui_command(port: int, workers: int, environ: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The MLflow UI command line and environment for ``visionlab ui``.

    MLflow's defaults (4 server workers plus a huey job runner for its GenAI jobs) cost five
    processes and their memory on a laptop where one person browses runs; one worker answers
    that, and the job runner stays off unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION asks for it.
    """
    from visionlab.tracking import tracking_uri
    from visionlab.tracking.mlflow_run import default_artifact_location

    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri()]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    artifacts = default_artifact_location()
    if artifacts:
        command += ["--default-artifact-root", artifacts]
    env = dict(environ)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    no_telemetry(env)
    return command, env


def runs_links(base_url: str) -> list[str]:
    """One line per data set: the URL of its runs in MLflow's model-training view.

    MLflow 3 opens on its GenAI home and an experiment on its traces; the runs table of a training
    experiment is the ``workflowType=machine_learning`` view.
    """
    from mlflow.tracking import MlflowClient

    from visionlab.tracking import tracking_uri

    try:
        experiments = MlflowClient(tracking_uri()).search_experiments()
    except Exception:  # an empty or unreadable store: the UI still starts, with no links to give
        return []
    return [
        f"  {e.name}: {base_url}/#/experiments/{e.experiment_id}/runs?workflowType=machine_learning"
        for e in sorted(experiments, key=lambda e: e.name)
        if e.name != "Default"
    ]


def _workers_option(default: int, help: str):
    workers = click.IntRange(min=1)
    return click.option("--workers", default=default, show_default=True, type=workers, help=help)


@click.command()
@click.option("--port", default=5000, show_default=True)
@_workers_option(1, "MLflow server worker processes (more only for several people browsing at once).")
def ui(port: int, workers: int) -> None:
    """Start the MLflow UI on 127.0.0.1 against the project's tracking store."""
    from visionlab.tracking import tracking_uri

    command, env = ui_command(port, workers, dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    click.echo(f"MLflow UI for {tracking_uri()} at {base} (Ctrl-C to stop)")
    links = runs_links(base)
    if links:
        click.echo("runs of each data set (the model-training view):\n" + "\n".join(links))
    sys.stdout.flush()
    if os.name == "posix":
        os.execve(sys.executable, command, env)  # Ctrl-C and signals go straight to the server
    sys.exit(subprocess.run(command, env=env, check=False).returncode)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--backend-store-uri",
    envvar="VISIONLAB_SERVER_BACKEND",
    required=True,
    help="PostgreSQL database for runs and the model registry: postgresql://USER[:PASSWORD]@HOST[:PORT]/DB "
    "(or env VISIONLAB_SERVER_BACKEND, which keeps the password out of `ps`).",
)
@click.option(
    "--artifacts-destination",
    envvar="VISIONLAB_SERVER_ARTIFACTS",
    required=True,
    help="Where the server stores artifacts: a folder on the server machine, or s3://, gs://, ... "
    "Clients upload and download through the server and need no credentials for it.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 to serve the whole network.")
@click.option("--port", default=5000, show_default=True, type=int)
@_workers_option(2, "Server worker processes (MLflow's own default is 4).")
@click.option(
    "--auth/--no-auth",
    default=False,
    show_default=True,
    help="MLflow's basic-auth app: every request needs a user (clients set MLFLOW_TRACKING_USERNAME "
    "and MLFLOW_TRACKING_PASSWORD); the admin is created on first start from MLFLOW_AUTH_ADMIN_PASSWORD.",
)
@click.option(
    "--auth-database-uri",
    envvar="VISIONLAB_SERVER_AUTH_DB",
    default=None,
    help="Where --auth keeps users and permissions [default: the backend store's database].",
)
@click.option(
    "--default-permission",
    type=click.Choice(["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"]),
    default="EDIT",
    show_default=True,
    help="With --auth: what a logged-in user may do on experiments and models others created.",
)
@click.argument("mlflow_args", nargs=-1, type=click.UNPROCESSED)
def server(
    backend_store_uri: str,
    artifacts_destination: str,
    host: str,
    port: int,
    workers: int,
    auth: bool,
    auth_database_uri: str | None,
    default_permission: str,
    mlflow_args: tuple[str, ...],
) -> None:
    """Run the team MLflow tracking server (PostgreSQL backend, served artifacts).

    Clients then log to it with MLFLOW_TRACKING_URI=http://HOST:PORT. Arguments after `--` go to
    `mlflow server` unchanged (e.g. -- --allowed-hosts mlflow.lab.example:5000).
    """
    from visionlab.tracking import server as team

    try:
        team.check_backend(backend_store_uri)
        artifacts = team.artifacts_destination(artifacts_destination)
        env = team.server_env(backend_store_uri, os.environ)  # telemetry already off (configure_logging)
        if auth:
            env = team.auth_env(auth_database_uri or backend_store_uri, default_permission, env)
    except (VisionlabError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if host in ("0.0.0.0", "::") and not auth:
        click.echo(
            "warning: serving the whole network without --auth: anyone who reaches this port can "
            "delete runs or move a model's @best alias (docs/team-server.md: logins and TLS)",
            err=True,
        )
    command = team.server_command(artifacts, host, port, workers, mlflow_args, auth=auth)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    login = "; users log in (MLFLOW_TRACKING_USERNAME/PASSWORD)" if auth else ""
    click.echo(
        f"MLflow tracking server on http://{shown}:{port}: runs and registry in "
        f"{team.redact(backend_store_uri)}, artifacts in {artifacts}{login}\n"
        f"clients: export MLFLOW_TRACKING_URI=http://{shown}:{port}  (Ctrl-C to stop)"
    )
    sys.stdout.flush()
    if os.name == "posix":
        os.execve(sys.executable, command, env)  # Ctrl-C and signals go straight to the server
    sys.exit(subprocess.run(command, env=env, check=False).returncode)
