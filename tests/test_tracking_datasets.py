"""Each run's data set inputs, logged to a real SQLite MLflow store (no mocks)."""

from __future__ import annotations

import hashlib
import json

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import minimal_params, write_image
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.params import parse_params
from visionlab.runtime.loaders import split_rows
from visionlab.tracking import start_run, tracking_uri
from visionlab.tracking.datasets import archive_source, log_datasets


# Slow: creating a SQLite MLflow store runs its schema migrations, ~12 s of CPU.
@pytest.mark.slow
def test_a_run_says_which_images_it_saw(in_tmp, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for label in ("cat", "dog"):
        for n in range(10):
            write_image(
                in_tmp / f"data/raw/toy/toy/{label}/{n}.png", seed=n + 20 * (label == "dog"), fmt="PNG"
            )
    (in_tmp / "data/raw/toy/toy/notes.txt").write_text("not an image")
    params = parse_params(minimal_params(prepare={"workers": 1}))
    prepare_dataset(params, "toy")
    # The address the download stage used, as it records it (credentials already redacted there;
    # the logged source is redacted again, whatever the record says).
    record = {"url": "https://user:secret@mirror.example/toy.tgz", "sha256": "0" * 64}
    (in_tmp / "data/raw/toy.json").write_text(json.dumps(record))
    splits, _ = split_rows(params, "toy-cnn")

    run = start_run("toy", "toy-cnn")
    log_datasets(run, params.dataset("toy"), "toy", splits)
    run.finish(True)

    inputs = MlflowClient(tracking_uri()).get_run(run.run_id).inputs.dataset_inputs
    by_context = {i.tags[0].value: i.dataset for i in inputs if i.tags[0].key == "mlflow.data.context"}
    assert set(by_context) == {"train", "validation", "test"}
    manifest_hash = hashlib.sha256((in_tmp / "data/prepared/toy/manifest.csv").read_bytes()).hexdigest()
    for split, context in (("train", "train"), ("val", "validation"), ("test", "test")):
        logged = by_context[context]
        assert logged.name == f"toy/{split}" and logged.digest == manifest_hash[:32]
        assert logged.source_type == "http"
        assert json.loads(logged.source) == {"url": "https://***@mirror.example/toy.tgz"}
        profile = json.loads(logged.profile)
        assert profile["images"] == len(splits[split]) > 0
        assert sum(profile["per_class"].values()) == len(splits[split])
        assert profile["manifest_sha256"] == manifest_hash
        assert profile["cleaning"]["files_seen"] == 21 and profile["cleaning"]["images_kept"] == 20
        assert profile["cleaning"]["split_totals"] == {s: len(splits[s]) for s in ("train", "val", "test")}
    assert "secret" not in json.dumps([i.dataset.to_dictionary() for i in inputs])

    # The same prepared data logged by a second run is the same MLflow data set (same digest).
    again = start_run("toy", "toy-cnn")
    log_datasets(again, params.dataset("toy"), "toy", {"train": splits["train"]})
    again.finish(True)
    second = MlflowClient(tracking_uri()).get_run(again.run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in second] == [("toy/train", manifest_hash[:32])]


def test_a_local_mirror_is_logged_as_a_normalised_path(in_tmp):
    card = parse_params(minimal_params()).dataset("toy")
    (in_tmp / "data/raw").mkdir(parents=True)
    (in_tmp / "data/raw/toy.json").write_text(json.dumps({"url": "/work/main/../shared/datasets/toy.tgz"}))
    assert archive_source(card, "toy") == ("local", "/work/shared/datasets/toy.tgz")
    (in_tmp / "data/raw/toy.json").write_text(json.dumps({"url": "https://a:b@mirror.example/x/../toy.tgz"}))
    assert archive_source(card, "toy")[0] == "http"  # an address is kept as the server was asked
