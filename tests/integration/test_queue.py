"""`dvc exp run --queue` + `dvc queue start -j 2`: both variants run in DVC's temporary copies,
and both reach the one MLflow store at the project root (no lost runs, no lock errors)."""

from __future__ import annotations

import json
import sys
import time

import pytest
import yaml

from tests.http_server import serve
from tests.integration.test_pipeline import copy_project, git, mlflow_runs, run, tiny_params

pytestmark = pytest.mark.slow


def test_queued_variants_run_in_parallel_and_all_reach_mlflow(tmp_path, shared_datasets):
    project = copy_project(tmp_path / "project")
    dvc = [sys.executable, "-m", "dvc"]
    with serve(shared_datasets) as (url, _):
        tiny_params(project, url, shared_datasets)
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["experiments"] = {"flowers-cnn": params["experiments"]["flowers-cnn"]}
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        git(project, "init", "-q")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "baseline")
        baseline_rev = run(project, "git", "rev-parse", "HEAD").strip()
        for lr in ("0.002", "0.0005"):
            run(project, *dvc, "exp", "run", "--queue", "-S", f"train.lr={lr}")
        run(project, *dvc, "queue", "start", "-j", "2")
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            status = run(project, *dvc, "queue", "status")
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(5)
        assert "Failed" not in status, status

    shown = json.loads(run(project, *dvc, "exp", "show", "--json"))
    accuracy_by_lr, name_by_lr = {}, {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for rev in experiment["revs"]:
                lr = str(rev["data"]["params"]["params.yaml"]["data"]["train"]["lr"])
                metrics = rev["data"]["metrics"]["results/flowers-cnn/metrics.json"]["data"]
                accuracy_by_lr[lr] = metrics["test"]["accuracy"]
                name_by_lr[lr] = rev["name"]
    assert {"0.002", "0.0005"} <= set(accuracy_by_lr)
    _, runs = mlflow_runs(project)
    logged = {r.data.params.get("train.lr"): r for r in runs}
    assert {"0.002", "0.0005"} <= set(logged)
    for lr in ("0.002", "0.0005"):
        assert logged[lr].info.status == "FINISHED"
        # The figure DVC shows for the variant is the one its MLflow run holds.
        assert logged[lr].data.metrics["test_accuracy"] == pytest.approx(accuracy_by_lr[lr])
        assert "test_accuracy" in logged[lr].data.metrics  # evaluate reopened the same run
        # Run -> experiment: the run names the DVC experiment that shows its params, and its baseline.
        assert logged[lr].data.tags["dvc.exp_name"] == name_by_lr[lr]
        assert logged[lr].data.tags["dvc.exp_baseline_rev"] == baseline_rev
    # In parallel, not one after the other: each run's span (train to explain) overlaps the other's.
    spans = [(logged[lr].info.start_time, logged[lr].info.end_time) for lr in ("0.002", "0.0005")]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans
    assert not list((project / ".dvc").rglob("mlflow.db")), "a queued run wrote its own store"
