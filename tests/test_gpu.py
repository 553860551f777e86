"""The CUDA path of the train stage: bfloat16 autocast, channels-last inputs, recorded in MLflow.

Marked ``gpu``: skipped where torch sees no CUDA device (tests/conftest.py), run with
``uv run pytest -m gpu`` on a machine with one.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import torch
from torch import nn

from tests.conftest import TOY_CNN, minimal_params, write_toy_images
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.params import parse_params
from visionlab.training.train_stage import train_experiment

pytestmark = pytest.mark.gpu

EXPERIMENT = "toy-cnn"


def _project(root: Path, amp: str, device: str = "cuda"):
    write_toy_images(root, size=(40, 36))
    raw = minimal_params(
        models={"cnn": dict(TOY_CNN)},
        recipes={"default": {"epochs": 1, "batch_size": 4, "num_workers": 0}},
        train={"device": device, "amp": amp},
    )
    params = parse_params(raw)
    prepare_dataset(params, "toy")
    return params


def _train_watching_convolutions(params) -> list[tuple[torch.dtype, bool, str]]:
    """Train, recording for every convolution call in training mode its output dtype, whether its
    input was channels-last, and its device."""
    seen: list[tuple[torch.dtype, bool, str]] = []

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d) and module.training:
            x = inputs[0]
            seen.append((output.dtype, x.is_contiguous(memory_format=torch.channels_last), x.device.type))

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        train_experiment(params, EXPERIMENT)
    finally:
        handle.remove()
    return seen


def _logged_params() -> dict[str, str]:
    mlflow.set_tracking_uri(f"sqlite:///{Path('mlflow.db').resolve()}")
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return run.data.params


def test_cuda_training_runs_bfloat16_autocast_on_channels_last_inputs(in_tmp):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16: the stage trains in float32 there")
    seen = _train_watching_convolutions(_project(in_tmp, "auto"))
    assert seen, "no convolution ran in training mode"
    assert {dtype for dtype, _, _ in seen} == {torch.bfloat16}
    assert all(channels_last for _, channels_last, _ in seen)
    assert {device for _, _, device in seen} == {"cuda"}
    summary = json.loads((Path("data/models") / EXPERIMENT / "summary.json").read_text())
    assert (summary["device"], summary["amp"], summary["channels_last"]) == ("cuda", True, True)
    logged = _logged_params()
    assert (logged["device"], logged["amp"], logged["channels_last"]) == ("cuda", "True", "True")
    assert logged["train.amp"] == "auto"


def test_amp_off_trains_in_float32_and_says_so(in_tmp):
    seen = _train_watching_convolutions(_project(in_tmp, "off"))
    assert seen and {dtype for dtype, _, _ in seen} == {torch.float32}
    assert not any(channels_last for _, channels_last, _ in seen)
    logged = _logged_params()
    assert (logged["device"], logged["amp"], logged["channels_last"]) == ("cuda", "False", "False")
    assert logged["train.amp"] == "off"
