"""Data-parallel training: params, the launcher's settings, shards, and 2 gloo workers through the real stage.

The stage runs as ``python stages/train.py`` in a project folder of generated images (red-ish vs
blue-ish, so a tiny net learns them in a few epochs) with a real MLflow store: the same command
``dvc repro`` runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image

from tests.conftest import minimal_params
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.errors import ParamsError, VisionlabError
from visionlab.params import TrainParams, parse_params
from visionlab.runtime.loaders import ShardSampler, loader
from visionlab.training.launch import failure_message, launch_config, worker_params_yaml

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "stages" / "train.py"
# Two processes see each epoch in a different order and average gradients over twice the batch:
# the weights differ from one process's, the accuracy on this easy task may not by more than this.
ACCURACY_TOLERANCE = 0.15


def _train(overrides: dict) -> dict:
    raw = minimal_params(train=overrides)
    return parse_params(raw).train.model_dump()


def test_one_process_by_default():
    settings = TrainParams()
    assert (settings.nproc_per_node, settings.nnodes, settings.rdzv_endpoint) == (1, 1, None)
    assert parse_params(yaml.safe_load((REPO / "params.yaml").read_text())).train.nproc_per_node == 1


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"nproc_per_node": 0}, "train.nproc_per_node"),
        ({"nnodes": 0}, "train.nnodes"),
        ({"rdzv_endpoint": "no-port"}, "train.rdzv_endpoint"),
        ({"rdzv_backend": "etcd"}, "train.rdzv_backend"),
        ({"nnodes": 2, "node_rank": 2}, "train.node_rank"),
        ({"rdzv_id": "has space"}, "train.rdzv_id"),
    ],
)
def test_bad_launch_settings_name_their_key(overrides, named):
    with pytest.raises(ParamsError, match=named.replace(".", r"\.")):
        _train(overrides)


def test_a_recipe_may_ask_for_more_processes():
    raw = minimal_params(recipes={"wide": {"nproc_per_node": 4}})
    raw["experiments"]["toy-cnn"]["recipe"] = "wide"
    assert parse_params(raw).recipe_of("toy-cnn").nproc_per_node == 4


def test_one_machine_gets_a_private_rendezvous():
    config = launch_config(TrainParams(nproc_per_node=2), environ={})
    assert (config.min_nodes, config.max_nodes, config.nproc_per_node) == (1, 1, 2)
    assert config.rdzv_backend == "c10d" and config.rdzv_endpoint == "localhost:0"
    assert config.max_restarts == 0


def test_several_machines_need_an_endpoint():
    with pytest.raises(VisionlabError, match=r"train\.rdzv_endpoint"):
        launch_config(TrainParams(nnodes=2), environ={})
    from_env = launch_config(TrainParams(nnodes=2), environ={"MASTER_ADDR": "node1", "MASTER_PORT": "29400"})
    assert from_env.rdzv_endpoint == "node1:29400" and from_env.min_nodes == 2
    given = launch_config(TrainParams(nnodes=2, rdzv_endpoint="head:1234", rdzv_id="job7"), environ={})
    assert (given.rdzv_endpoint, given.run_id) == ("head:1234", "job7")


def test_static_rendezvous_takes_the_node_rank_from_slurm():
    settings = TrainParams(nnodes=3, rdzv_endpoint="head:1234", rdzv_backend="static")
    assert launch_config(settings, environ={"SLURM_NODEID": "2"}).rdzv_configs["rank"] == 2
    with pytest.raises(VisionlabError, match=r"train\.node_rank"):
        launch_config(settings, environ={})
    with pytest.raises(VisionlabError, match=r"train\.node_rank"):
        launch_config(settings, environ={"NODE_RANK": "3"})


def test_workers_validate_the_shipped_params_exactly_as_the_stage_did():
    # Every launcher path (one machine, several, Slurm) hands its workers this file.
    shipped = parse_params(yaml.safe_load((REPO / "params.yaml").read_text()))
    again = parse_params(yaml.safe_load(worker_params_yaml(shipped)), "worker params")
    assert again == shipped
    for name in shipped.experiments:
        assert again.model_of(name) == shipped.model_of(name)
        assert again.recipe_of(name) == shipped.recipe_of(name)
        assert again.explain_of(name) == shipped.explain_of(name)
    # What the launcher once wrote (every default filled in) is refused for the shipped experiments.
    with pytest.raises(ParamsError, match=r"augmented: experiments\..*\.train_images decides"):
        parse_params(yaml.safe_load(yaml.safe_dump(shipped.model_dump(mode="json"))))


def test_workers_get_overrides_made_in_code():
    params = parse_params(minimal_params())
    changed = params.model_copy(update={"train": params.train.model_copy(update={"lr": 0.25})})
    assert parse_params(yaml.safe_load(worker_params_yaml(changed))).train.lr == 0.25


def test_validation_shards_cover_each_image_once():
    shards = [list(ShardSampler(11, rank, 3)) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))
    assert [len(s) for s in shards] == [4, 4, 3]


def test_training_shards_are_equal_and_reshuffled_per_epoch():
    data = list(range(10))
    first, second = (loader(data, 2, shuffle=True, workers=0, seed=1, rank=r, world_size=2) for r in (0, 1))
    assert len(first) == len(second)  # equal steps on every rank, or DDP would wait forever
    order = []
    for epoch in (1, 2):
        first.sampler.set_epoch(epoch)
        second.sampler.set_epoch(epoch)
        epoch_items = [int(x) for b in first for x in b] + [int(x) for b in second for x in b]
        assert sorted(epoch_items) == data
        order.append(epoch_items)
    assert order[0] != order[1]


# --- the real stage, 1 and 2 processes ---------------------------------------------------------


def _write_images(root: Path, per_class: int = 24) -> None:
    rng = np.random.default_rng(0)
    for label, channel in (("red", 0), ("blue", 2)):
        folder = root / "data/raw/toy/toy" / label
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 110, (24, 24, 3), dtype=np.uint8)
            pixels[..., channel] += 120
            Image.fromarray(pixels).save(folder / f"{i}.png")


def _project(root: Path, nproc: int, epochs: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    _write_images(root)
    raw = minimal_params(
        train={
            "image_size": 24,
            "epochs": epochs,
            "batch_size": 8,
            "lr": 0.003,
            "num_workers": 0,
            "early_stopping_patience": 0,  # the same number of epochs, whatever the losses
            "schedule": "none",
            "device": "cpu",
            "nproc_per_node": nproc,
        },
    )
    # No batch norm: its running statistics lag behind after so few steps, and validation uses them.
    model = {"arch": "cifar_inception", "batch_norm": False, "dropout": 0.0, "dense_dropout": 0.0}
    raw["models"]["cnn"] = {**model, "weights": "none", "base": "trainable", "augmented": False}
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    with contextlib.chdir(root):
        prepare_dataset(parse_params(raw), "toy")
    return root


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VISIONLAB_PROJECT_ROOT", "MLFLOW_TRACKING_URI")}
    return {**env, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def _stage(root: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(STAGE), "--experiment", "toy-cnn"],
        cwd=root,
        env=_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _run_stage(root: Path) -> subprocess.CompletedProcess:
    process = _stage(root)
    out, err = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _runs(root: Path) -> list:
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("toy")
    return client.search_runs([experiment.experiment_id])


def _outputs(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "data/models").rglob("*") if p.is_file()} | {
        str(p.relative_to(root)) for p in (root / "results").rglob("*") if p.is_file()
    }


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path):
    single, double = _project(tmp_path / "one", 1), _project(tmp_path / "two", 2)
    for root in (single, double):
        done = _run_stage(root)
        assert done.returncode == 0, done.stderr[-3000:]

    assert _outputs(single) == _outputs(double)
    assert not (double / "data/.resume").exists() or not any((double / "data/.resume").iterdir())
    histories = [pd.read_csv(root / "results/toy-cnn/history.csv") for root in (single, double)]
    assert len(histories[0]) == len(histories[1]) == 3
    summaries = [json.loads((r / "data/models/toy-cnn/summary.json").read_text()) for r in (single, double)]
    assert [s["processes"] for s in summaries] == [1, 2]

    runs = _runs(double)
    assert len(runs) == 1  # rank 0 alone logged
    assert runs[0].data.params["processes"] == "2"
    assert runs[0].data.params["train.nproc_per_node"] == "2"
    client = MlflowClient(f"sqlite:///{double / 'mlflow.db'}")
    assert len(client.get_metric_history(runs[0].info.run_id, "val_accuracy")) == 3  # once per epoch

    # Each rank saw half of every epoch; the history counts every image once.
    final = [h.iloc[-1] for h in histories]
    assert final[0].val_accuracy >= 0.8, histories[0]
    assert abs(final[0].val_accuracy - final[1].val_accuracy) <= ACCURACY_TOLERANCE, histories


def _worker(stage: psutil.Process, rank: int) -> psutil.Process:
    for child in stage.children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "ddp_worker" in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"no worker of rank {rank} under pid {stage.pid}")


@pytest.mark.slow
def test_a_killed_worker_fails_the_stage_naming_its_rank_and_a_rerun_continues_its_run(tmp_path):
    root = _project(tmp_path / "kill", 2, epochs=4)
    process = _stage(root)
    stage = psutil.Process(process.pid)
    deadline = time.monotonic() + 300
    while not list((root / "data/.resume").glob("*/train.pt")):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no epoch finished in time"
        time.sleep(0.02)
    # Rank 0 holds the MLflow run: killed outright, it cannot mark it; the stage process must.
    victim = _worker(stage, 0)
    survivor = _worker(stage, 1)
    victim.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=120)

    assert process.returncode == 1, err[-3000:]
    message = [line.split("error: ", 1)[1] for line in err.splitlines() if "error: " in line]
    assert len(message) == 1, err[-3000:]  # (after a progress bar's carriage return, maybe)
    assert message[0].startswith(f"train@toy-cnn: worker rank 0 (pid {victim.pid}) was killed by SIGKILL")
    assert "rerun the stage to resume" in message[0]
    assert "Traceback" not in err.split("error:")[-1]
    survivor.wait(timeout=30) if survivor.is_running() else None
    assert not survivor.is_running() or survivor.status() == psutil.STATUS_ZOMBIE  # no orphan left
    assert not (root / "data/models/toy-cnn").exists()
    # The stage process saw rank 0 die: the run is marked at once, not left RUNNING.
    assert [run.info.status for run in _runs(root)] == ["KILLED"]

    rerun = _run_stage(root)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming after epoch" in rerun.stderr
    history = pd.read_csv(root / "results/toy-cnn/history.csv")
    assert list(history.epoch) == [1, 2, 3, 4]
    timing = json.loads((root / "results/toy-cnn/training.json").read_text())
    assert timing["resumed_after_epoch"] >= 1
    # One experiment, one run: the resume continued the killed run, each epoch logged once.
    (run,) = _runs(root)
    assert run.info.status == "FINISHED"
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
    assert sorted(steps) == [1, 2, 3, 4], steps


def _failure(rank: int, exitcode: int, timestamp: int):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    failure = ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=exitcode, error_file="")
    failure.timestamp = timestamp
    return failure


def test_the_failure_message_leads_with_the_root_cause(tmp_path):
    (tmp_path / "rank-0.txt").write_text("DistBackendError: Connection closed by peer\n")
    (tmp_path / "rank-2.txt").write_text("train.device: cuda was requested but no CUDA device is available\n")
    failures = {
        0: _failure(0, 1, timestamp=5),
        1: _failure(1, -signal.SIGKILL, timestamp=9),
        2: _failure(2, 1, timestamp=7),
        3: _failure(3, -signal.SIGTERM, timestamp=9),
    }
    message = failure_message("flowers-cnn", failures, tmp_path)
    assert message.startswith("train@flowers-cnn: worker rank 1 (pid 101) was killed by SIGKILL; then ")
    assert message.index("rank 0 (pid 100) failed: DistBackendError") < message.index("rank 2 (pid 102)")
    assert "rank 3" not in message  # stopped by the agent: one of "the other workers"
    only_stopped = failure_message("x", {3: _failure(3, -signal.SIGTERM, timestamp=1)}, tmp_path)
    assert "worker rank 3 (pid 103) was stopped (SIGTERM)" in only_stopped
    failed = failure_message("x", {4: _failure(4, 2, timestamp=1)}, tmp_path)
    assert failed.startswith("train@x: worker rank 4 (pid 104) failed: exit code 2")
    # Only a killed worker is helped by a plain rerun; a failure with a reason needs its cause fixed.
    assert "rerun the stage to resume" in message and "fix the cause" not in message
    assert "fix the cause above" in failed and "rerun the stage to resume" not in failed
