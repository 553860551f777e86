"""Data-parallel training as a user starts it: `dvc exp run -S train.nproc_per_node=2` on the shipped
params.yaml (tiny settings on the shared flowers sample), one experiment of each family.

The unit tests in tests/test_ddp.py build their own params; these run the repository's own, which is
how a launcher that rewrote the params for its workers once failed every shipped experiment.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.http_server import serve
from tests.integration.conftest import (
    copy_project,
    dvc,
    git,
    mlflow_runs,
    ran_stages,
    require_shared_datasets,
    tiny_params,
)

pytestmark = pytest.mark.slow

# A from-scratch CNN on the augmented copies, a frozen base on featurize's cache, and a fine-tuned
# base whose top blocks train on cached activations.
FAMILIES = {
    "flowers-cnn": "images",
    "flowers-effnet": "cached features",
    "flowers-best": "cached features, then cached activations at backbone.blocks.5",
}


def test_two_processes_train_every_family_through_dvc_exp_run(tmp_path):
    shared = require_shared_datasets()
    with serve(shared) as (url, _):
        project = copy_project(tmp_path / "project")
        tiny_params(project, url, shared, list(FAMILIES))
        git(project, "init", "-q")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "baseline")
        for experiment in FAMILIES:
            output = dvc(project, "exp", "run", "-S", "train.nproc_per_node=2", f"train@{experiment}")
            assert f"train@{experiment}" in ran_stages(output)
            assert "worker rank" not in output, output[-3000:]

    _, runs = mlflow_runs(project)
    by_experiment = {run.data.tags.get("visionlab.experiment"): run for run in runs}
    for experiment, trained_on in FAMILIES.items():
        summary = json.loads((project / f"data/models/{experiment}/summary.json").read_text())
        assert summary["processes"] == 2
        assert summary["trained_on"].startswith(trained_on)
        history = pd.read_csv(project / f"results/{experiment}/history.csv")
        assert history.epoch.tolist() == list(range(1, len(history) + 1)) and len(history) >= 2
        run = by_experiment[experiment]
        assert run.info.status == "FINISHED"
        assert run.data.params["processes"] == "2"
