"""Past one machine: a team MLflow server on PostgreSQL, a DVC remote, experiments shared across clones.

One tiny pipeline (flowers-cnn) runs against `visionlab server` (a throw-away PostgreSQL cluster,
artifacts served by MLflow); the same project then pushes its cache to a DVC remote and an
experiment to a bare git repo, and fresh clones pull both. The README's "Scaling out" commands.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.http_server import serve
from tests.integration.conftest import copy_project, git, ran_stages, require_shared_datasets, tiny_params
from tests.integration.postgres import free_port, postgres_server

pytestmark = pytest.mark.slow

EXPERIMENT = "flowers-cnn"
SERVER_START_S = 600  # a cold MLflow server migrates its schema into PostgreSQL first


def sh(project: Path, *args: str, env: dict[str, str] | None = None, ok: bool = True):
    """Run a command in ``project`` with the copy's code, without the caller's MLflow/DVC settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "VISIONLAB_"))}
    clean["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{clean['PATH']}"
    clean["PYTHONPATH"] = str(project / "src")
    result = subprocess.run(
        args, cwd=project, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=1200
    )
    output = result.stdout + result.stderr
    if ok:
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
    return result


def dvc(project: Path, *args: str, **kwargs) -> str:
    result = sh(project, sys.executable, "-m", "dvc", *args, **kwargs)
    return result.stdout + result.stderr


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def team_server(tmp: Path, backend: str, *options: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`visionlab server` as the README starts it, on a free port; yields its URL once /health answers."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    log = (tmp / "server.log").open("w")
    command = [sys.executable, "-m", "visionlab.cli", "server", "--port", str(port), *options]
    command += ["--artifacts-destination", str(tmp / "artifacts")]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    server_env = {**clean, "VISIONLAB_SERVER_BACKEND": backend, **(env or {})}
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=server_env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            assert process.poll() is None, f"the server exited:\n{(tmp / 'server.log').read_text()[-4000:]}"
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"no answer in {SERVER_START_S} s"
            time.sleep(1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # uvicorn's workers too
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@dataclass
class Team:
    project: Path  # clone A: ran the pipeline against the server
    tmp: Path
    backend: str  # the PostgreSQL database behind the server
    url: str  # the tracking server
    artifacts: Path  # the server's artifact store
    seconds: float  # the first `dvc repro`

    @property
    def env(self) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": self.url}

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.url)


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> Iterator[Team]:
    shared_datasets = require_shared_datasets()
    tmp = tmp_path_factory.mktemp("team")
    with postgres_server() as backend, team_server(tmp, backend) as url, serve(shared_datasets) as (data, _):
        project = copy_project(tmp / "a")
        tiny_params(project, data, shared_datasets, [EXPERIMENT])
        git(project, "init", "-q")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "baseline")
        started = time.monotonic()
        dvc(project, "repro", env={"MLFLOW_TRACKING_URI": url})
        yield Team(project, tmp, backend, url, tmp / "artifacts", time.monotonic() - started)


def test_pipeline_logs_runs_and_artifacts_to_the_team_server_and_a_quick_try_is_not_registered(team):
    client = team.client()
    experiment = client.get_experiment_by_name("flowers")
    assert experiment is not None
    # Served artifacts: the client only ever sees mlflow-artifacts:/, never the server's folder.
    assert experiment.artifact_location.startswith("mlflow-artifacts:"), experiment.artifact_location
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["visionlab.experiment"] == EXPERIMENT
    assert run.data.params["model.arch"] == "handmade_cnn"
    assert run.data.params["train.epochs"] == "2"
    metrics = json.loads((team.project / f"results/{EXPERIMENT}/metrics.json").read_text())
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 2
    recorded = json.loads((team.project / f"data/models/{EXPERIMENT}/mlflow_run.json").read_text())
    assert recorded["run_id"] == run.info.run_id and recorded["tracking_uri"] == team.url

    # Artifacts went through the server into its store, and come back byte for byte.
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert logged == {"model/model.pt"}
    stored = {md5(path) for path in team.artifacts.rglob("model.pt")}
    assert md5(team.project / f"data/models/{EXPERIMENT}/model.pt") in stored
    back = client.download_artifacts(run.info.run_id, "evaluation/metrics.json", str(team.tmp))
    assert json.loads(Path(back).read_text()) == metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id, "explanations")} >= {
        "explanations/index.html"
    }

    # A quick try (10 images per class, 48 px) on a shared server: tagged, and never made @best,
    # where it could displace a full-set model.
    assert run.data.tags["visionlab.scale"] == "quick try"
    assert "prepare.max_per_class is 10" in run.data.tags["visionlab.quick_try"]
    assert "visionlab-flowers" not in [m.name for m in client.search_registered_models()]
    assert not (team.project / "mlflow.db").exists(), "logged to a local store instead of the server"

    # `visionlab doctor` checks the server it is pointed at.
    result = sh(team.project, sys.executable, "-m", "visionlab.cli", "doctor", env=team.env, ok=False)
    assert f"OK    MLflow store: {team.url} (artifacts served)" in result.stdout, result.stdout


def test_dvc_remote_and_experiments_are_shared_across_clones(team):
    a, tmp = team.project, team.tmp
    remote, origin = tmp / "dvc-remote", tmp / "origin.git"
    # Clone A publishes its results: the pipeline's state in git, the data in the DVC remote.
    dvc(a, "remote", "add", "-d", "shared", str(remote))
    git(a, "add", "-A")
    git(a, "commit", "-qm", "tiny pipeline results")
    dvc(a, "push")
    sh(tmp, "git", "init", "-q", "--bare", str(origin))
    git(a, "remote", "add", "origin", str(origin))
    branch = sh(a, "git", "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    git(a, "push", "-q", "origin", branch)

    # A fresh clone pulls it all: nothing to recompute.
    b = tmp / "b"
    sh(tmp, "git", "clone", "-q", "-b", branch, str(origin), str(b))
    git(b, "config", "user.name", "visionlab-ci")
    git(b, "config", "user.email", "ci@example.invalid")
    dvc(b, "pull")
    assert md5(b / f"data/models/{EXPERIMENT}/model.pt") == md5(a / f"data/models/{EXPERIMENT}/model.pt")
    assert "up to date" in dvc(b, "status").lower()
    assert not ran_stages(dvc(b, "repro", env=team.env))

    # Clone A runs an experiment and shares it: the git refs to origin, its outputs to the remote.
    baseline = sh(a, "git", "rev-parse", "HEAD").stdout.strip()
    dvc(a, "exp", "run", "-n", "lr-high", "-S", "train.lr=0.003", env=team.env)
    model_a = md5(a / f"data/models/{EXPERIMENT}/model.pt")
    metrics_a = json.loads((a / f"results/{EXPERIMENT}/metrics.json").read_text())
    dvc(a, "exp", "push", "origin", "lr-high")

    # Clone B sees it with its metrics, and restores its model without retraining.
    dvc(b, "exp", "pull", "origin", "lr-high")
    shown = json.loads(dvc(b, "exp", "show", "--json"))
    found = {
        rev["name"]: rev["data"]
        for baseline_row in shown
        for experiment in baseline_row.get("experiments") or []
        for rev in experiment["revs"]
    }
    assert "lr-high" in found, found.keys()
    shown_metrics = found["lr-high"]["metrics"][f"results/{EXPERIMENT}/metrics.json"]["data"]
    assert shown_metrics["test"]["accuracy"] == metrics_a["test"]["accuracy"]
    dvc(b, "exp", "apply", "lr-high")  # the README's command, alone: it restores the outputs too
    assert md5(b / f"data/models/{EXPERIMENT}/model.pt") == model_a
    assert yaml.safe_load((b / "params.yaml").read_text())["train"]["lr"] == 0.003
    assert not ran_stages(dvc(b, "repro", env=team.env)), "the applied experiment was recomputed"

    # Experiment -> MLflow run: by its name (tag), or by the run id among its outputs.
    client = team.client()
    (run,) = client.search_runs(
        [client.get_experiment_by_name("flowers").experiment_id], "tags.`dvc.exp_name` = 'lr-high'"
    )
    recorded = json.loads((b / f"data/models/{EXPERIMENT}/mlflow_run.json").read_text())
    assert recorded["run_id"] == run.info.run_id
    assert run.data.params["train.lr"] == "0.003"
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics_a["test"]["accuracy"])
    # ... and back: the run names the experiment and the commit it branched from.
    assert run.data.tags["dvc.exp_baseline_rev"] == baseline
    listed = dvc(b, "exp", "list", "--rev", run.data.tags["dvc.exp_baseline_rev"], "--name-only")
    assert run.data.tags["dvc.exp_name"] in listed.split()


def test_a_tracking_server_that_is_down_stops_the_stage_with_one_message(team):
    project = team.project
    # From a committed state (the previous test leaves an experiment applied in the workspace).
    git(project, "checkout", "-q", "--", ".")
    dvc(project, "checkout", "--allow-missing")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "before the server goes down", "--allow-empty")
    model = project / f"data/models/{EXPERIMENT}/model.pt"
    model_before = md5(model)
    params_file = project / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    before = {p: md5(p) for p in (project / "data/augmented").rglob("*") if p.is_file()}
    params["train"]["lr"] = 0.0007
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    down = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = sh(project, sys.executable, "-m", "dvc", "repro", env={"MLFLOW_TRACKING_URI": down}, ok=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output, output[-4000:]
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"MLflow tracking server {down}" in errors[0], output[-4000:]
    assert "unset MLFLOW_TRACKING_URI" in errors[0]
    assert time.monotonic() - started < 300, "waited on MLflow's retries instead of failing fast"
    # resolve (a second, no server) records train's params; train is the first to need the server.
    assert ran_stages(output) == {"resolve", f"train@{EXPERIMENT}"}, "failed after doing work"
    # Nothing local is lost: the data stages' outputs are untouched, and the failed stage's previous
    # outputs (DVC clears them before running it) come back from git and the DVC cache.
    assert {p: md5(p) for p in (project / "data/augmented").rglob("*") if p.is_file()} == before
    git(project, "checkout", "-q", "--", ".")
    dvc(project, "checkout", "--allow-missing")
    assert "up to date" in dvc(project, "status").lower()
    assert md5(model) == model_before


def test_a_server_with_auth_lets_no_one_write_who_is_not_logged_in(team):
    """`visionlab server --auth` (MLflow's basic-auth app) on the team's PostgreSQL database."""
    password = "admin-" + secrets.token_hex(8)
    admin, alice = ("admin", password), ("alice", "alice-" + secrets.token_hex(8))
    first_start = {"MLFLOW_AUTH_ADMIN_PASSWORD": password}
    with team_server(team.tmp / "auth", team.backend, "--auth", env=first_start) as url:

        def post(path: str, body: dict, auth: tuple[str, str] | None = None) -> requests.Response:
            return requests.post(f"{url}/api/2.0/mlflow/{path}", json=body, auth=auth, timeout=60)

        assert post("experiments/create", {"name": "intruder"}).status_code == 401
        search = requests.get(f"{url}/api/2.0/mlflow/experiments/search", timeout=60)
        assert search.status_code == 401
        created = post("experiments/create", {"name": "owls"}, admin)
        assert created.status_code == 200, created.text
        experiment = created.json()["experiment_id"]
        user = post("users/create", {"username": alice[0], "password": alice[1]}, admin)
        assert user.status_code == 200, user.text
        # A logged-in member logs into the team's experiments (--default-permission EDIT) but cannot
        # delete what someone else owns.
        run = post("runs/create", {"experiment_id": experiment}, alice)
        assert run.status_code == 200, run.text
        assert post("experiments/delete", {"experiment_id": experiment}, alice).status_code == 403

        # A stage without a login stops with one line saying how to log in; with one, it logs.
        start = "from visionlab.tracking import start_run; print(start_run('owls', 'owls-cnn').run_id)"
        python = [sys.executable, "-c", start]
        refused = sh(team.project, *python, env={"MLFLOW_TRACKING_URI": url}, ok=False)
        assert refused.returncode != 0
        assert "asks for a login: export MLFLOW_TRACKING_USERNAME" in refused.stderr, refused.stderr[-3000:]
        login = {"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": alice[0]}
        login["MLFLOW_TRACKING_PASSWORD"] = alice[1]
        allowed = sh(team.project, *python, env=login)
        assert len(allowed.stdout.strip().splitlines()[-1]) == 32  # a run id
        doctor = [sys.executable, "-m", "visionlab.cli", "doctor"]
        anonymous = sh(team.project, *doctor, env={"MLFLOW_TRACKING_URI": url}, ok=False).stdout
        assert f"FAIL  MLflow store: {url}: it asks for a login and refused no login" in anonymous, anonymous
        member = sh(team.project, *doctor, env=login, ok=False).stdout
        assert f"OK    MLflow store: {url} (artifacts served)" in member, member
