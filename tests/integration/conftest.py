"""The real pipeline, run once per test session and shared by the tests that read its outputs.

A tiny `dvc repro` costs minutes: :func:`tiny_pipeline` runs it once per experiment list and
hands every test the same project (the pipeline test, the browser test). The HTTP server that
serves the shared archives stays up for the whole session, so a test may run more DVC commands
against it (`dvc exp run`).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import SHARED_DATASETS
from tests.http_server import Behaviour, serve
from visionlab import paths
from visionlab.params import trace

REPO = Path(__file__).resolve().parents[2]
PER_CLASS = 10


def copy_project(target: Path, source: Path = REPO) -> Path:
    return paths.copy_project(source, target)


def tiny_params(project: Path, url: str, shared: Path, experiments: Sequence[str] | None = None) -> None:
    """Tiny settings on the flowers sample served at ``url``.

    ``experiments``: the ones to keep (default: every experiment on flowers); the other data sets
    are dropped, they have their own tests.
    """
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["datasets"] = {"flowers": params["datasets"]["flowers"]}
    if experiments is None:
        experiments = [n for n, e in params["experiments"].items() if e["dataset"] == "flowers"]
    missing = [name for name in experiments if name not in params["experiments"]]
    assert not missing, f"no such experiments in params.yaml: {missing}"
    params["experiments"] = {name: params["experiments"][name] for name in experiments}
    sums = dict(reversed(line.split()) for line in (shared / "SHA256SUMS").read_text().splitlines() if line)
    params["datasets"]["flowers"]["source"].update(
        url=f"{url}/flower_photos.tgz",
        sha256=sums["flower_photos.tgz"],
        size=(shared / "flower_photos.tgz").stat().st_size,
    )
    params["download"]["backoff_s"] = 0.1
    params["prepare"].update(max_per_class=PER_CLASS)
    params["augment"].update(factor=2, image_size=48)
    params["train"].update(image_size=48, epochs=2, batch_size=16, num_workers=0)
    for recipe in (params.get("recipes") or {}).values():  # recipes stay tiny too
        recipe = recipe if isinstance(recipe, dict) else {}
        for key, tiny in (("epochs", 2), ("head_epochs", 1), ("batch_size", 16)):
            if key in recipe:
                recipe[key] = min(recipe[key], tiny)
    params["evaluate"].update(num_workers=0)
    params["explain"].update(
        images_per_class=1, patches_max_images=10, feature_map_max_channels=8, patches_top_k=2
    )
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_env(project: Path, env_extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a command in the project copy gets: none of this shell's MLflow, DVC or
    visionlab settings, this interpreter's tools first, the copy's code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "VISIONLAB_"))}
    env.update(env_extra or {})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(project / "src")  # stages run the copy's code
    return env


def run(project: Path, *args: str, env_extra: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        args,
        cwd=project,
        env=run_env(project, env_extra),
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
    return output


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def git(project: Path, *args: str) -> None:
    run(project, "git", *args)
    if args[0] == "init":
        # A repo-local identity: `dvc exp run` commits, and CI machines may have no global one.
        run(project, "git", "config", "user.name", "visionlab-ci")
        run(project, "git", "config", "user.email", "ci@example.invalid")


def mlflow_runs(project: Path, dataset: str = "flowers"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(dataset)
    assert experiment is not None, "no MLflow experiment named after the data set"
    return client, client.search_runs([experiment.experiment_id])


def dvc(project: Path, *args: str, env_extra: dict[str, str] | None = None) -> str:
    return run(project, sys.executable, "-m", "dvc", *args, env_extra=env_extra)


@dataclass
class TinyProject:
    """A project copy after one full tiny `dvc repro` (committed as "baseline" before it)."""

    path: Path
    experiments: tuple[str, ...]
    first_output: str  # what that `dvc repro` printed
    url: str  # the shared archives, still served
    behaviour: Behaviour  # the server's request log
    traces: Path  # each stage's params reads in that first `dvc repro` (visionlab.params.trace)

    @property
    def store_uri(self) -> str:
        return f"sqlite:///{self.path / 'mlflow.db'}"


def require_shared_datasets() -> Path:
    if not (SHARED_DATASETS / "SHA256SUMS").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the shared samples are missing from {SHARED_DATASETS}")
        pytest.skip(f"shared samples not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Iterator[Callable[[Sequence[str]], TinyProject]]:
    """``tiny_pipeline(experiments)``: the project after one tiny `dvc repro` of those experiments.

    Runs once per distinct experiment list in the session; later calls get the same project, in
    whatever state earlier tests left it (the pipeline test commits and runs `dvc exp run`).
    """
    built: dict[tuple[str, ...], TinyProject | str] = {}
    with contextlib.ExitStack() as stack:

        def get(experiments: Sequence[str]) -> TinyProject:
            key = tuple(experiments)
            if key not in built:
                shared = require_shared_datasets()
                url, behaviour = stack.enter_context(serve(shared))
                project = copy_project(tmp_path_factory.mktemp("tiny") / "project")
                tiny_params(project, url, shared, key)
                git(project, "init", "-q")
                git(project, "add", "-A")
                git(project, "commit", "-qm", "baseline")
                traces = tmp_path_factory.mktemp("params-reads")  # outside the project: not committed
                try:
                    first = dvc(project, "repro", env_extra={trace.ENV: str(traces)})
                except AssertionError as exc:
                    built[key] = str(exc)  # the next test fails at once instead of rerunning it
                    raise
                built[key] = TinyProject(project, key, first, url, behaviour, traces)
            found = built[key]
            if isinstance(found, str):
                pytest.fail(f"the tiny pipeline failed earlier in this session:\n{found[-3000:]}")
            return found

        yield get
