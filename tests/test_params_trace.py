"""The params read tracer (params/trace.py): what a stage reads maps to the params.yaml keys behind it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from visionlab.params import load_params, trace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tracing(tmp_path, monkeypatch):
    monkeypatch.setenv(trace.ENV, str(tmp_path))
    trace.start("test", "unit")
    try:
        yield load_params(ROOT / "params.yaml")
    finally:
        trace.reset()


def test_validation_reads_nothing_and_plain_sections_name_their_key(tracing):
    params = tracing
    assert trace.reads() == set()  # validating every key is not the stage reading them
    assert params.evaluate.batch_size > 0
    assert params.dataset("flowers").source.url
    assert trace.reads() == {"evaluate.batch_size", "datasets.flowers.source.url"}


def test_a_resolved_field_names_every_layer_it_comes_from(tracing):
    params = tracing
    recipe_name = params.experiment("flowers-best").recipe  # read too: listed below
    assert params.recipe_of("flowers-best").lr > 0
    assert trace.reads() == {
        "train.lr",
        f"recipes.{recipe_name}",
        "experiments.flowers-best.train_overrides",
        "experiments.flowers-best.recipe",
    }
    params.model_of("flowers-best").head.dropout  # noqa: B018 - the read is the point
    model = params.experiment("flowers-best").model
    assert {f"models.{model}.head.dropout", "experiments.flowers-best.model_overrides"} <= trace.reads()
    # A copy keeps its sources; the capped epochs depend on epochs_cap too.
    assert params.recipe_of("flowers-best").model_copy(update={"lr": 1.0}).epochs > 0
    assert "train.epochs_cap" in trace.reads() and "train.epochs" in trace.reads()


def test_off_by_default_and_written_at_exit(tmp_path):
    code = (
        "from visionlab.params import load_params, trace\n"
        "trace.start('evaluate', 'flowers-cnn')\n"
        f"p = load_params({str(ROOT / 'params.yaml')!r})\n"
        "p.explain_of('flowers-cnn').images_per_class\n"
    )
    env = {**os.environ, trace.ENV: str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    (written,) = tmp_path.glob("evaluate@flowers-cnn.*.json")
    assert json.loads(written.read_text()) == [
        "experiments.flowers-cnn.explain_overrides",
        "explain.images_per_class",
    ]
    assert not trace.ACTIVE  # this process never started it


def test_an_unwritable_folder_is_one_line_at_exit(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = "from visionlab.params import trace\ntrace.start('report', 'report')\n"
    env = {**os.environ, trace.ENV: str(blocker / "reads")}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    (line,) = result.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"{trace.ENV}: cannot write the params reads to {blocker / 'reads' / 'report'}.")
    assert line.endswith(".json (Not a directory)")
