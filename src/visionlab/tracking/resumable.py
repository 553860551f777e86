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

from visionlab.tracking.mlflow_run import TrackedRun, _client, flatten, open_run, start_run

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
    saved = _saved_run_id(record)
    # open_run reopens the recorded run, or starts a new one (with a warning) if the store lost it.
    run = open_run(record, dataset, experiment) if saved else start_run(dataset, experiment)
    if run.run_id != saved:
        resume.mkdir(parents=True, exist_ok=True)
        run.record(record)
    steps = {m.step for m in run.client.get_metric_history(run.run_id, watched_metric)}
    if steps:
        log.info("%s: continuing MLflow run %s (%d epochs logged so far)", experiment, run.run_id, len(steps))
    return ResumedRun(run, run.client.get_run(run.run_id).data.params, steps)


def abandon_runs(folders: Iterable[Path]) -> list[str]:
    """Mark KILLED every still-RUNNING run recorded in these resume folders; return their ids.

    For training that will never continue: its checkpoints are being discarded, or written for
    other params, or its workers were killed and the run is not alive until a rerun reopens it.
    """
    ids = [run_id for folder in folders if (run_id := _saved_run_id(folder / RESUME_RECORD))]
    if not ids:
        return []
    marked: list[str] = []
    try:
        client = _client()
    except Exception as exc:  # a store that does not answer: the caller's own error matters more
        log.warning("cannot mark the MLflow runs of %s killed: %s", ", ".join(ids), exc)
        return marked
    for run_id in ids:
        try:
            if client.get_run(run_id).info.status == RunStatus.to_string(RunStatus.RUNNING):
                client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
                marked.append(run_id)
        except MlflowException as exc:  # a store that lost it: nothing to mark
            log.debug("cannot mark MLflow run %s killed: %s", run_id, exc)
    return marked
