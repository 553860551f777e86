"""MLflow runs shared by the train, evaluate and explain stages of one experiment.

The train stage starts the run and records its id in its output folder; later stages reopen it,
so an experiment's params, per-epoch curves, test metrics and explanation images sit in one run.
The default store is a SQLite file at the *original* project root (absolute path), so runs from
``dvc exp run --temp`` and ``--queue`` land beside the workspace's; ``MLFLOW_TRACKING_URI``
overrides it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from visionlab import paths
from visionlab.atomic import atomic_write_text
from visionlab.locks import file_lock
from visionlab.tracking.server import (
    TrackingServerError,
    probe,
    refusal_message,
    require_server,
    unavailable_message,
)

log = logging.getLogger(__name__)

STORE_FILE = "mlflow.db"
RUN_RECORD = "mlflow_run.json"  # in the train stage's output folder: the run later stages reopen
ARTIFACTS_DIR = "mlartifacts"
_MAX_PARAM_LENGTH = 6000
_BATCH = 100


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{paths.project_root() / STORE_FILE}"


def default_artifact_location() -> str | None:
    """Artifacts beside the default store; a user-provided server keeps its own default."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    return (paths.project_root() / ARTIFACTS_DIR).as_uri()


def _experiment_id(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=default_artifact_location())
    except MlflowException:
        # A parallel queued run created it between our lookup and our create.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 0.001}}`` -> ``{"train.lr": "0.001"}``."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:_MAX_PARAM_LENGTH]
    return flat


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


@contextmanager
def _server_errors(uri: str) -> Iterator[None]:
    """A tracking server that went away mid-stage: one clear error instead of MLflow's traceback."""
    import requests

    try:
        yield
    except (MlflowException, requests.RequestException) as exc:
        refused = refusal_message(uri, exc) if _is_server(uri) else None
        if refused is not None:
            raise TrackingServerError(refused) from exc
        reason = probe(uri) if _is_server(uri) else None
        if reason is None:
            raise
        raise TrackingServerError(unavailable_message(uri, reason)) from exc


@dataclass
class TrackedRun:
    """A handle on one MLflow run, usable from any stage."""

    client: MlflowClient
    run_id: str
    experiment_id: str

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(k, v) for k, v in flatten(params).items()]
        with _server_errors(self.client.tracking_uri):
            for start in range(0, len(items), _BATCH):
                self.client.log_batch(self.run_id, params=items[start : start + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        with _server_errors(self.client.tracking_uri):
            for start in range(0, len(items), _BATCH):
                self.client.log_batch(self.run_id, metrics=items[start : start + _BATCH])

    def set_tags(self, tags: Mapping[str, str | None]) -> None:
        items = [RunTag(k, v) for k, v in tags.items() if v is not None]
        with _server_errors(self.client.tracking_uri):
            self.client.log_batch(self.run_id, tags=items)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        path = Path(path)
        with _server_errors(self.client.tracking_uri):
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), folder)
            else:
                self.client.log_artifact(self.run_id, str(path), folder)

    def finish(self, ok: bool = True) -> None:
        status = RunStatus.to_string(RunStatus.FINISHED if ok else RunStatus.FAILED)
        with _server_errors(self.client.tracking_uri):
            self.client.set_terminated(self.run_id, status)

    def record(self, path: Path) -> None:
        """Write the run's address so later stages can reopen it."""
        atomic_write_text(
            path,
            json.dumps(
                {
                    "run_id": self.run_id,
                    "experiment_id": self.experiment_id,
                    "tracking_uri": self.client.tracking_uri,
                },
                indent=2,
            )
            + "\n",
        )


@contextmanager
def finishing(run: TrackedRun) -> Iterator[TrackedRun]:
    """The run marked FINISHED when the block completes, FAILED when anything (Ctrl-C too) escapes.

    A run left RUNNING after a crash would look alive in the MLflow UI forever.
    """
    try:
        yield run
    except BaseException:
        run.finish(False)
        raise
    run.finish(True)


@functools.cache
def _checked_server(uri: str) -> None:
    # Once per process: a server that answered stays trusted; mid-stage failures are caught
    # per call (_server_errors). A failed probe raises, so it is not cached.
    require_server(uri)


def _client() -> MlflowClient:
    uri = tracking_uri()
    if _is_server(uri):
        _checked_server(uri)  # before any work: MLflow itself would retry for minutes
        return MlflowClient(tracking_uri=uri)
    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri)
    # A new SQLite store migrates its schema when first opened; two queued runs doing that at
    # once fail ("duplicate column"). One process at a time opens (and so creates) the store.
    with file_lock(Path(uri.removeprefix("sqlite:///"))):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    return client


def start_run(dataset: str, experiment: str) -> TrackedRun:
    """A new run named after the pipeline experiment, in the data set's MLflow experiment."""
    client = _client()
    experiment_id = _experiment_id(client, dataset)
    dvc_exp = os.environ.get("DVC_EXP_NAME")
    # Run -> DVC experiment: its name plus the commit it branched from (names are unique per
    # baseline); experiment -> run: search tags.dvc.exp_name, or the run id the train stage
    # records in data/models/<experiment>/ (a DVC output, so `dvc exp apply` brings it back).
    tags = {
        "mlflow.runName": f"{experiment}@{dvc_exp}" if dvc_exp else experiment,
        "visionlab.experiment": experiment,
        "visionlab.dataset": dataset,
        "dvc.exp_name": dvc_exp or "workspace",
        "dvc.exp_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV"),
        "mlflow.source.git.commit": git_commit(),
        "mlflow.source.name": "dvc repro",
    }
    with _server_errors(client.tracking_uri):
        run = client.create_run(experiment_id, tags={k: v for k, v in tags.items() if v is not None})
    log.info("MLflow run %s in experiment %r at %s", run.info.run_id, dataset, client.tracking_uri)
    return TrackedRun(client, run.info.run_id, experiment_id)


def open_run(record: Path, dataset: str, experiment: str) -> TrackedRun:
    """Reopen the run that the train stage recorded; start a new one if the store lost it."""
    try:
        saved = json.loads(Path(record).read_text())
        client = _client()
        run = client.get_run(saved["run_id"])
        client.update_run(run.info.run_id, status="RUNNING")
        return TrackedRun(client, run.info.run_id, run.info.experiment_id)
    except (OSError, KeyError, ValueError, MlflowException) as exc:
        log.warning("cannot reopen the MLflow run recorded in %s (%s); starting a new run", record, exc)
        return start_run(dataset, experiment)
