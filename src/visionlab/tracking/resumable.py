"""One MLflow run per training run, through kills and resumes.

The train stage keeps the run's address beside its epoch checkpoints (the resume folder). A rerun
that resumes those checkpoints reopens the same run, so its curves stay continuous and each epoch
appears once; a run whose checkpoints can no longer be resumed (other params, ``train.resume:
false``) is marked KILLED instead of staying RUNNING forever. A process killed outright (SIGKILL, the
OOM killer) cannot mark its own run: the next start does, or, under data parallelism, the stage
process that watched its worker die.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from visionlab.tracking.mlflow_run import TrackedRun, _client, flatten, start_run

log = logging.getLogger(__name__)

RESUME_RECORD = "mlflow_run.json"  # in the resume folder: the run a resumed training continues


class ResumedRun(TrackedRun):
    """A run that may already hold some epochs: params are logged once, each epoch's metrics once."""

    logged_steps: set[int]

    def __init__(self, run: TrackedRun, logged_params: Mapping[str, str], logged_steps: Iterable[int]):
        super().__init__(run.client, run.run_id, run.experiment_id)
        self._logged_params = dict(logged_params)
        self.logged_steps = set(logged_steps)

    def log_params(self, params: Mapping[str, Any]) -> None:
        # MLflow refuses a param logged again with another value. Only runtime settings outside the
        # resume key can differ here (the device, loader workers): the first value stays, the
        # change is noted in a tag.
        flat = flatten(params)
        logged = self._logged_params
        changed = sorted(k for k, v in flat.items() if k in logged and logged[k] != v)
        new = {k: v for k, v in flat.items() if k not in logged}
        if new:
            super().log_params(new)
            self._logged_params.update(new)
        if changed:
            self.set_tags({"visionlab.changed_on_resume": ", ".join(changed)})

    def log_epoch(self, metrics: Mapping[str, float], step: int) -> None:
        """An epoch's metrics, unless this run already has that epoch (a replay after a resume)."""
        if step in self.logged_steps:
            return
        self.log_metrics(metrics, step=step)
        self.logged_steps.add(step)


def _saved_run_id(record: Path) -> str | None:
    try:
        return json.loads(record.read_text())["run_id"]
    except (OSError, KeyError, ValueError, TypeError):
        return None


def resumable_run(resume: Path, dataset: str, experiment: str, watched_metric: str) -> ResumedRun:
    """The run recorded in ``resume`` when it is still in the store, else a new one recorded there."""
    record = resume / RESUME_RECORD
    run_id = _saved_run_id(record)
    if run_id is not None:
        client = _client()
        try:
            found = client.get_run(run_id)
            steps = {m.step for m in client.get_metric_history(run_id, watched_metric)}
            client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        except MlflowException as exc:
            log.warning("cannot reopen the MLflow run recorded in %s (%s); starting a new run", record, exc)
        else:
            log.info("%s: continuing MLflow run %s (%d epochs logged so far)", experiment, run_id, len(steps))
            return ResumedRun(TrackedRun(client, run_id, found.info.experiment_id), found.data.params, steps)
    run = ResumedRun(start_run(dataset, experiment), {}, ())
    resume.mkdir(parents=True, exist_ok=True)
    run.record(record)
    return run


def abandon_runs(folders: Iterable[Path]) -> list[str]:
    """Mark KILLED every still-RUNNING run recorded in these resume folders; return their ids.

    For training that will never continue: its checkpoints are being discarded, or written for
    other params, or its workers were killed and the run is not alive until a rerun reopens it.
    """
    ids = [run_id for folder in folders if (run_id := _saved_run_id(folder / RESUME_RECORD))]
    if not ids:
        return []
    marked = []
    client = _client()
    for run_id in ids:
        try:
            if client.get_run(run_id).info.status == RunStatus.to_string(RunStatus.RUNNING):
                client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
                marked.append(run_id)
        except MlflowException as exc:  # a store that lost it: nothing to mark
            log.debug("cannot mark MLflow run %s killed: %s", run_id, exc)
    return marked
