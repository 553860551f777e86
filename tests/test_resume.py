"""A training run killed mid-way continues from its last epoch checkpoint, to the same weights."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from visionlab.params import TrainParams, parse_params
from visionlab.training import train_stage
from visionlab.training.loop import fit
from visionlab.training.phase import Phase, RunHooks
from visionlab.training.train_stage import resume_key

SCRIPT = Path(__file__).parent / "scripts" / "train_until_killed.py"
REPO = Path(__file__).resolve().parents[1]


def _train(checkpoint: Path, kill_at: int, output: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(checkpoint), str(kill_at), str(output)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# Slow: three Python processes that each import torch and train (about a minute of CPU).
@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(tmp_path):
    killed = _train(tmp_path / "resume.pt", 3, tmp_path / "never-written.pt")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "never-written.pt").exists()
    assert (tmp_path / "resume.pt").is_file()

    resumed = _train(tmp_path / "resume.pt", 0, tmp_path / "resumed.pt")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "epoch 4/6" in resumed.stderr and "epoch 3/6" not in resumed.stderr  # it went on
    straight = _train(tmp_path / "fresh.pt", 0, tmp_path / "straight.pt")
    assert straight.returncode == 0, straight.stderr[-2000:]

    a = torch.load(tmp_path / "resumed.pt", weights_only=True)
    b = torch.load(tmp_path / "straight.pt", weights_only=True)
    assert a["resumed_from"] == 3 and b["resumed_from"] == 0
    for name, tensor in b["state"].items():
        assert torch.equal(a["state"][name], tensor), name


def _batches(seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 4, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)


def test_a_checkpoint_of_other_params_is_not_resumed(tmp_path):
    checkpoint = tmp_path / "run.pt"
    settings = TrainParams(epochs=2, lr=0.05)
    first = fit(
        nn.Linear(4, 2),
        _batches(0),
        _batches(1),
        settings,
        torch.device("cpu"),
        Phase(checkpoint=checkpoint),
        RunHooks(checkpoint_key="lr=0.05"),
    )
    assert first.resumed_from == 0 and checkpoint.is_file()
    again = fit(
        nn.Linear(4, 2),
        _batches(0),
        _batches(1),
        settings,
        torch.device("cpu"),
        Phase(checkpoint=checkpoint),
        RunHooks(checkpoint_key="lr=0.05"),
    )
    assert again.resumed_from == 2 and len(again.history) == 2  # finished: nothing retrained
    other = fit(
        nn.Linear(4, 2),
        _batches(0),
        _batches(1),
        settings,
        torch.device("cpu"),
        Phase(checkpoint=checkpoint),
        RunHooks(checkpoint_key="lr=0.01"),
    )
    assert other.resumed_from == 0


def test_a_cut_short_checkpoint_starts_over(tmp_path):
    checkpoint = tmp_path / "run.pt"
    checkpoint.write_bytes(b"PK\x03\x04 truncated")
    result = fit(
        nn.Linear(4, 2),
        _batches(0),
        _batches(1),
        TrainParams(epochs=1),
        torch.device("cpu"),
        Phase(checkpoint=checkpoint),
        RunHooks(checkpoint_key="k"),
    )
    assert result.resumed_from == 0 and len(result.history) == 1


def _shipped_key(raw: dict, experiment: str = "flowers-cnn") -> str:
    splits = {name: pd.DataFrame({"path": [f"{name}/a.jpg"], "label": [0]}) for name in ("train", "val")}
    return resume_key(parse_params(raw), experiment, splits)


def test_a_knob_added_with_a_null_default_leaves_checkpoints_resumable(monkeypatch):
    """A later commit that adds an optional knob (null = as before) must not orphan a long run's
    checkpoint; a value the run does set still changes the key."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    before = _shipped_key(raw)
    shaping = train_stage.experiment_params

    def with_a_new_optional_knob(params, experiment):
        found = shaping(params, experiment)
        found["model"]["a_knob_added_later"] = None
        found["train"]["another"] = {"nested": None}
        return found

    monkeypatch.setattr(train_stage, "experiment_params", with_a_new_optional_knob)
    assert _shipped_key(raw) == before
    monkeypatch.undo()
    model = raw["experiments"]["flowers-cnn"]["model"]
    raw["models"][model]["grayscale"] = True  # a knob the run sets: a different run
    assert _shipped_key(raw) != before


def test_a_knob_added_later_left_off_keeps_the_checkpoints_key(monkeypatch):
    """ADDED_OFF: a run of the shipped params resumes its checkpoint from before the knob existed."""
    from visionlab.params import ADDED_OFF

    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    now = _shipped_key(raw)
    shaping = train_stage.experiment_params

    def before_the_knobs(params, experiment):
        found = shaping(params, experiment)
        for key in ADDED_OFF:
            del found["train"][key]
        return found

    monkeypatch.setattr(train_stage, "experiment_params", before_the_knobs)
    assert _shipped_key(raw) == now
    monkeypatch.undo()
    raw["train"]["mixup_alpha"] = 0.2  # set: another run
    assert _shipped_key(raw) != now
