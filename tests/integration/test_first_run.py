"""A first-time user without Kaggle credentials: `dvc repro --keep-going` builds what it can.

The real DVC runs on a project copy with the flowers sample served on 127.0.0.1 and the Kaggle
study's card as shipped (no credentials, no mirror). Targets keep it small: one flowers
experiment on the prepared images (so augment must not run) and one Kaggle experiment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.http_server import serve
from tests.integration.conftest import REPO, copy_project, dvc, git, ran_stages, tiny_params

pytestmark = pytest.mark.slow

FLOWERS = "flowers-simplecnn"  # train_images: prepared
KAGGLE = "kflowers-vgg16"


def _without_kaggle(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "VISIONLAB_", "KAGGLE_"))
    }
    env["KAGGLE_CONFIG_DIR"] = str(project / "no-kaggle")  # no kaggle.json there
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(project / "src")
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def test_keep_going_builds_what_it_can_and_names_the_rest(tmp_path, shared_datasets):
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())
    project = copy_project(tmp_path / "project")
    with serve(shared_datasets) as (url, _):
        tiny_params(project, url, shared_datasets, [FLOWERS])
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["datasets"]["kaggle_flowers"] = shipped["datasets"]["kaggle_flowers"]
        params["experiments"][KAGGLE] = shipped["experiments"][KAGGLE]
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        git(project, "init", "-q")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "baseline")

        result = _without_kaggle(project, "repro", "--keep-going", f"train@{FLOWERS}", f"train@{KAGGLE}")
        output = result.stdout + result.stderr
        assert result.returncode != 0, output  # something was skipped: not a silent success
        # The flowers chain is built, without augment: this experiment trains on prepared images.
        assert ran_stages(output) == {
            "resolve",
            "download@flowers",
            "prepare@flowers",
            f"featurize@{FLOWERS}",
            f"train@{FLOWERS}",
            "download@kaggle_flowers",
        }
        assert (project / f"data/models/{FLOWERS}/model.pt").is_file()
        # What was skipped is named at the end; why and how to enable it is in the stage's error.
        assert "failed to reproduce 'download@kaggle_flowers'" in output.strip().splitlines()[-1]
        assert "no Kaggle credentials found; set KAGGLE_USERNAME and KAGGLE_KEY" in output
        assert "download.mirror" in output
        # Nothing trained on the missing data, and DVC still calls that chain not built.
        assert not (project / f"data/models/{KAGGLE}").exists()
        assert not (project / "data/raw/kaggle_flowers").exists()
        status = _without_kaggle(project, "status", "--with-deps", f"train@{KAGGLE}")
        assert status.returncode == 0, status.stderr
        for stage in ("download@kaggle_flowers", "prepare@kaggle_flowers", f"train@{KAGGLE}"):
            assert f"{stage}:" in status.stdout, status.stdout
        assert f"train@{FLOWERS}:" not in _without_kaggle(project, "status", f"train@{FLOWERS}").stdout
        # The same, a line per data set (README: `visionlab status`): flowers' other experiments
        # were not asked for; Kaggle's chain never ran.
        summary = subprocess.run(
            [sys.executable, "-m", "visionlab.cli", "status", "--stages"],
            cwd=project,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")},
                "KAGGLE_CONFIG_DIR": str(project / "no-kaggle"),
                "PYTHONPATH": str(project / "src"),
            },
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        lines, listed = {line.split()[0]: line for line in summary.splitlines()}, set(summary.split())
        assert "never run" in lines["kaggle_flowers"] and f"train@{KAGGLE}" in listed, summary
        # ... and says why that chain cannot run here, as the --keep-going run's error did.
        assert "cannot run here: no Kaggle credentials" in " ".join(summary.split()), summary
        assert not {f"train@{FLOWERS}", "prepare@flowers", "resolve"} & listed, summary
        assert summary.splitlines()[-1].endswith("for one in full"), summary

        # The README's per-experiment override, as written, retrains that experiment alone.
        git(project, "add", "-A")
        git(project, "commit", "-qm", "first run")
        override = f"++experiments.{FLOWERS}.train_overrides.lr=0.0002"
        tuned = dvc(project, "exp", "run", "-S", override, f"train@{FLOWERS}")
        assert ran_stages(tuned) == {"resolve", f"train@{FLOWERS}"}  # resolve: its records stay
