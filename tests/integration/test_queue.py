"""`dvc exp run --queue` + `dvc queue start -j 2` at scale: eight variants run in DVC's temporary
copies, two at a time, and every one reaches the one MLflow store at the project root as its own run,
mapped to its own DVC experiment (no lost runs, no mix-ups, no lock errors)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.http_server import serve
from tests.integration.conftest import run_env
from tests.integration.test_pipeline import copy_project, git, mlflow_runs, run, tiny_params
from visionlab.dvc_queue import workers as queue_workers

pytestmark = pytest.mark.slow

LRS = ("0.002", "0.0005", "0.003", "0.0004", "0.0015", "0.0007", "0.0025", "0.0003")


def test_queued_variants_run_in_parallel_and_all_reach_mlflow(tmp_path, shared_datasets):
    project = copy_project(tmp_path / "project")
    dvc = [sys.executable, "-m", "dvc"]
    with serve(shared_datasets) as (url, _):
        tiny_params(project, url, shared_datasets)
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["experiments"] = {"flowers-cnn": params["experiments"]["flowers-cnn"]}
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        git(project, "init", "-q")
        # A built baseline in DVC's cache: each variant then reruns only its model stages.
        run(project, *dvc, "repro")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "baseline")
        baseline_rev = run(project, "git", "rev-parse", "HEAD").strip()
        for lr in LRS:
            run(project, *dvc, "exp", "run", "--queue", "-S", f"train.lr={lr}")
        try:
            start_workers(project, dvc, 2)
            deadline = time.monotonic() + 1800
            busy, left_behind = set(), set()  # what `visionlab doctor` would have said meanwhile
            while time.monotonic() < deadline:
                status = run(project, *dvc, "queue", "status")
                if "Queued" not in status and "Running" not in status:
                    break
                seen = queue_workers(project)
                busy |= {w.pid for w in seen if w.busy}
                left_behind |= {w.pid for w in seen if w.left_behind}
                time.sleep(5)
        finally:
            stop_workers(project, dvc)
        assert "Failed" not in status, status
        # DVC's real workers are found by their pid files, busy while they run an experiment, and
        # never taken for left behind while the queue runs.
        assert busy and not left_behind, (busy, left_behind)

    shown = json.loads(run(project, *dvc, "exp", "show", "--json"))
    accuracy_by_lr, name_by_lr = {}, {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for rev in experiment["revs"]:
                lr = str(rev["data"]["params"]["params.yaml"]["data"]["train"]["lr"])
                metrics = rev["data"]["metrics"]["results/flowers-cnn/metrics.json"]["data"]
                accuracy_by_lr[lr] = metrics["test"]["accuracy"]
                name_by_lr[lr] = rev["name"]
    assert set(LRS) <= set(accuracy_by_lr)
    assert len({name_by_lr[lr] for lr in LRS}) == len(LRS)  # eight experiments, eight names
    _, runs = mlflow_runs(project)
    variant_runs = [r for r in runs if r.data.params.get("train.lr") in LRS]
    assert sorted(r.data.params["train.lr"] for r in variant_runs) == sorted(LRS)  # one run each
    logged = {r.data.params["train.lr"]: r for r in variant_runs}
    for lr in LRS:
        assert logged[lr].info.status == "FINISHED"
        # The figure DVC shows for the variant is the one its MLflow run holds.
        assert logged[lr].data.metrics["test_accuracy"] == pytest.approx(accuracy_by_lr[lr])
        assert "test_accuracy" in logged[lr].data.metrics  # evaluate reopened the same run
        # Run -> experiment: the run names the DVC experiment that shows its params, and its baseline.
        assert logged[lr].data.tags["dvc.exp_name"] == name_by_lr[lr]
        assert logged[lr].data.tags["dvc.exp_baseline_rev"] == baseline_rev
    # Two at a time, not one after the other: some runs' spans (train to explain) overlap.
    spans = sorted((logged[lr].info.start_time, logged[lr].info.end_time) for lr in LRS)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), spans
    assert not list((project / ".dvc").rglob("mlflow.db")), "a queued run wrote its own store"


def start_workers(project: Path, dvc: list[str], workers: int) -> None:
    """`dvc queue start -j N`, its output to a file: the workers it leaves behind inherit it, and
    a worker that misses the queue's shutdown (a race in dvc-task: its monitor shut the queue down
    while this worker still ran a task) would hold a captured pipe open, and the test with it."""
    with open(project / ".dvc" / "tmp" / "queue-start.log", "w") as log:
        subprocess.run(
            [*dvc, "queue", "start", "-j", str(workers)],
            cwd=project,
            env=run_env(project),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=True,
        )


def stop_workers(project: Path, dvc: list[str]) -> None:
    """`dvc queue stop`, then any worker still alive (the one that missed the shutdown) is killed,
    so no process outlives the test."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            [*dvc, "queue", "stop"], cwd=project, env=run_env(project), capture_output=True, timeout=120
        )
    for worker in queue_workers(project):  # only live queue workers: an ended one's PID may be reused
        with contextlib.suppress(OSError):
            os.kill(worker.pid, signal.SIGKILL)
