"""SIGKILL the real stage scripts mid-way, as a crash or `kill -9` would, and rerun them.

Each stage runs as `dvc repro` runs it (`python stages/<stage>.py --<item> NAME` in the project
folder) in a subprocess of its own process group; the whole group is killed once the stage is
part-way through. Then: no partial output at the stage's output path, and the rerun ends with the
same bytes (train: the same weights, bit for bit) as an uninterrupted run, leaving no scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import TOY_CNN, minimal_params, write_toy_images
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.data.resolve_stage import resolve_stage
from visionlab.params import parse_params
from visionlab.runtime.loaders import read_splits

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture
def project(in_tmp):
    write_toy_images(in_tmp, size=(48, 40))
    raw = minimal_params(
        models={
            "cnn": dict(TOY_CNN),
            "effnet": {
                "arch": "efficientnet_lite0",
                "weights": "imagenet",
                "base": "frozen",
                "augmented": False,
                "image_size": 32,
            },
        },
        recipes={"default": {"epochs": 4, "batch_size": 4, "num_workers": 0, "seed": 3}},
        experiments={
            "toy-cnn": {"dataset": "toy", "model": "cnn", "recipe": "default"},
            "toy-effnet": {"dataset": "toy", "model": "effnet", "recipe": "default"},
        },
        augment={"factor": 6, "image_size": 48, "workers": 2},
        evaluate={"batch_size": 2, "num_workers": 0},
    )
    params = parse_params(raw)
    prepare_dataset(params, "toy")
    resolve_stage(params)  # featurize reads its record, as after `dvc repro resolve`
    Path("params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    return in_tmp


def _command(stage: str, option: str, name: str) -> list[str]:
    return [sys.executable, str(REPO / "stages" / f"{stage}.py"), f"--{option}", name]


def _run(stage: str, option: str, name: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        _command(stage, option, name), capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _kill_when(stage: str, option: str, name: str, ready: Callable[[], bool]) -> None:
    """Start the stage, SIGKILL its whole process group as soon as ``ready()``, and check it died."""
    process = subprocess.Popen(
        _command(stage, option, name),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own group: worker processes die with it
    )
    deadline = time.monotonic() + 600
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"{stage} ended before it could be killed:\n{process.stderr.read().decode()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"{stage} never reached the point to kill it at")
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    process.stderr.close()


def _last_photo(split: str) -> Path:
    splits, _ = read_splits("toy", augmented=False)
    return Path(splits[split].path.iloc[-1])


@contextmanager
def _held_at(photo: Path) -> Iterator[None]:
    """Hold a stage that reads ``photo``: it becomes a named pipe, whose opening blocks with no writer.

    A toy stage ends in milliseconds; holding it makes the kill land mid-way every time, not by a race.
    """
    content = photo.read_bytes()
    photo.unlink()
    os.mkfifo(photo)
    try:
        yield
    finally:
        photo.unlink()
        photo.write_bytes(content)


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _scratch(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.glob(".tmp-*")) if parent.is_dir() else []


def test_killed_train_stage_resumes_to_the_same_weights(project):
    model_pt = Path("data/models/toy-cnn/model.pt")
    _run("train", "experiment", "toy-cnn")
    straight = torch.load(model_pt, weights_only=True)
    history = Path("results/toy-cnn/history.csv").read_text()
    assert json.loads(Path("data/models/toy-cnn/summary.json").read_text())["epochs_run"] == 4
    assert not list(Path("data/.resume").rglob("*.pt")), "a finished run leaves no resume state"

    # A checkpoint lands after each epoch: kill the stage once the one of epoch 2 is there.
    def after_epoch_two() -> bool:
        for checkpoint in Path("data/.resume").glob("toy-cnn-*/train.pt"):
            try:
                return torch.load(checkpoint, weights_only=False)["epoch"] >= 2
            except Exception:  # replaced under our feet: look again
                return False
        return False

    import shutil

    shutil.rmtree("data/models/toy-cnn")
    _kill_when("train", "experiment", "toy-cnn", after_epoch_two)
    assert not Path("data/models/toy-cnn").exists()  # no model from a run that did not finish
    assert not _scratch(Path("data/models"))

    rerun = _run("train", "experiment", "toy-cnn")
    assert "resuming after epoch" in rerun.stderr
    resumed = torch.load(model_pt, weights_only=True)
    assert json.loads(Path("results/toy-cnn/training.json").read_text())["resumed_after_epoch"] >= 2
    assert resumed["state_dict"].keys() == straight["state_dict"].keys()
    for name, tensor in straight["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], tensor), name
    strip = lambda text: [line.rsplit(",", 1)[0] for line in text.splitlines()]  # noqa: E731
    assert Path("results/toy-cnn/history.csv").read_text().splitlines()[0].endswith("seconds")
    assert strip(Path("results/toy-cnn/history.csv").read_text()) == strip(history)

    # One MLflow run per training: the killed one was continued, not joined by a second run.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("toy").experiment_id], "tags.`visionlab.experiment` = 'toy-cnn'"
    )
    # The straight run, then the killed and resumed one.
    assert sorted(run.info.status for run in runs) == ["FINISHED", "FINISHED"]
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
        assert sorted(steps) == [1, 2, 3, 4], steps  # every epoch once, across the kill


def test_killed_featurize_stage_leaves_nothing_and_reruns_to_the_same_features(project):
    out = Path("data/features/toy-effnet")
    _run("featurize", "experiment", "toy-effnet")
    straight = _digest(out)  # info.json too: the run's seconds go to results/, not here
    assert sorted(straight) == ["info.json", "train.pt", "val.pt"]

    import shutil

    shutil.rmtree(out)
    # The train split's features are written first: kill the stage while it computes the val split's.
    # Its features take milliseconds, so the stage is held there, not raced: one val photo becomes a
    # named pipe, and opening a pipe with no writer blocks until the kill.
    with _held_at(_last_photo("val")):
        _kill_when(
            "featurize",
            "experiment",
            "toy-effnet",
            lambda: any(Path("data/features").glob(".tmp-toy-effnet-*/train.pt")),
        )
    assert not out.exists()
    assert len(_scratch(Path("data/features"))) == 1  # the killed run's scratch, until a rerun

    _run("featurize", "experiment", "toy-effnet")
    assert _digest(out) == straight
    assert not _scratch(Path("data/features"))  # the rerun removed the dead run's scratch


def test_killed_augment_stage_leaves_nothing_and_reruns_to_the_same_images(project):
    out = Path("data/augmented/toy")
    _run("augment", "dataset", "toy")
    straight = _digest(out)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["originals"], summary["augmented_copies"]) == (14, 14 * 5)
    assert len(straight) == 14 * 5 + 3  # copies, manifest.csv, classes.json, summary.json

    import shutil

    shutil.rmtree(out)
    # Held on its last photo (see _held_at), so the kill comes after some copies, before the end.
    with _held_at(_last_photo("train")):
        _kill_when(
            "augment",
            "dataset",
            "toy",
            lambda: any(Path("data/augmented").glob(".tmp-toy-*/images/*/*.jpg")),
        )
    assert not out.exists()
    assert len(_scratch(Path("data/augmented"))) == 1

    _run("augment", "dataset", "toy")
    assert _digest(out) == straight
    assert not _scratch(Path("data/augmented"))
