"""The resolve stage's records change exactly when what their stage computes changes.

download@<dataset> depends on ``data/resolved/sources/<dataset>.json``, featurize@<experiment>
on ``data/resolved/features/<experiment>.json`` and train and explain on the params records
``data/resolved/{train,explain}/<experiment>.json`` instead of raw params (dvc.yaml): these tests
hold each record to what its stage's output is a function of.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATASETS, minimal_params
from visionlab.data.resolve_stage import resolve_stage
from visionlab.data.sources import source_pin
from visionlab.params import ADDED_OFF, RUNTIME_KEYS, TrainParams, load_params, parse_params
from visionlab.params.resolved import explain_params, feature_inputs, train_params

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SHA = "ab" * 32


def _frozen_params(**experiment_overrides) -> dict:
    raw = minimal_params()
    raw["models"]["effnet"] = {
        "arch": "efficientnet_lite0",
        "weights": "imagenet",
        "base": "frozen",
        "head": {"hidden": [64], "dropout": 0.2},
    }
    raw["experiments"]["toy-effnet"] = {"dataset": "toy", "model": "effnet", "recipe": "default"}
    raw["experiments"]["toy-effnet"].update(experiment_overrides)
    return raw


def _features(raw: dict, experiment: str = "toy-effnet") -> dict:
    return feature_inputs(parse_params(raw), experiment)


def _mirror(folder: Path, sha: str) -> str:
    folder.mkdir(exist_ok=True)
    (folder / "SHA256SUMS").write_text(f"{sha}  toy.tgz\n")
    return str(folder)


def test_head_recipe_and_runtime_changes_keep_the_feature_record():
    base = _features(_frozen_params())
    head_only = {"head": {"hidden": [256, 128], "dropout": 0.5, "batch_norm": True, "l2": 0.01}}
    assert _features(_frozen_params(model_overrides=head_only)) == base
    assert _features(_frozen_params(model_overrides={"dropout": 0.5, "l2": 0.001})) == base
    assert _features(_frozen_params(train_overrides={"lr": 0.1, "epochs": 3, "seed": 7})) == base
    runtime = _frozen_params()
    runtime["train"] = {"device": "cpu", "num_workers": 3}
    runtime["evaluate"] = {"batch_size": 8, "num_workers": 2}
    assert _features(runtime) == base


@pytest.mark.parametrize(
    "change",
    [
        {"model_overrides": {"head": {"pool": "max"}}},
        {"model_overrides": {"normalize": "imagenet"}},
        {"model_overrides": {"image_size": 160}},
        {"model_overrides": {"arch": "efficientnet_lite1"}},
        {"model_overrides": {"base": "finetune", "unfreeze_from": "backbone.blocks.5"}},
        {"train_images": "augmented"},
    ],
    ids=lambda change: json.dumps(change),
)
def test_what_shapes_the_features_changes_the_record(change):
    assert _features(_frozen_params(**change)) != _features(_frozen_params())


def test_input_size_and_precision_come_from_train_and_the_card():
    base = _features(_frozen_params())
    raw = _frozen_params()
    raw["train"] = {"image_size": 160}
    assert _features(raw)["image_size"] == 160 != base["image_size"]
    raw = _frozen_params()
    raw["train"] = {"amp": "off"}
    assert _features(raw)["amp"] == "off" != base["amp"]
    raw = _frozen_params()
    raw["datasets"]["toy"]["grayscale"] = True
    assert _features(raw)["grayscale"] is True


def test_a_trainable_base_has_nothing_to_cache_whatever_else_changes():
    raw = minimal_params()
    record = _features(raw, "toy-cnn")
    assert record == {"experiment": "toy-cnn", "base": "trainable"}
    raw["train"] = {"image_size": 96, "amp": "off"}
    raw["experiments"]["toy-cnn"]["model_overrides"] = {"dropout": 0.1}
    assert _features(raw, "toy-cnn") == record


def test_a_mirror_of_the_same_bytes_keeps_the_source_record(tmp_path):
    raw = minimal_params()
    raw["datasets"]["toy"]["source"].update(sha256=SAMPLE_SHA.upper(), size=10)
    pinned = source_pin(parse_params(raw), "toy")
    assert pinned == {"dataset": "toy", "archive": "toy.tgz", "root": "toy", "pin": f"sha256:{SAMPLE_SHA}"}

    same = copy.deepcopy(raw)
    same["download"] = {"mirror": _mirror(tmp_path / "same", SAMPLE_SHA), "retries": 9, "timeout_s": 5}
    assert source_pin(parse_params(same), "toy") == pinned
    moved = copy.deepcopy(raw)
    moved["datasets"]["toy"]["source"]["url"] = "https://example.org/elsewhere/toy.tgz"
    assert source_pin(parse_params(moved), "toy") == pinned

    sample = copy.deepcopy(raw)
    sample["download"] = {"mirror": _mirror(tmp_path / "sample", "cd" * 32)}
    assert source_pin(parse_params(sample), "toy")["pin"] == f"sha256:{'cd' * 32}"


def test_unpinned_bytes_are_known_by_their_address_and_a_broken_mirror_by_its_problem(tmp_path):
    raw = minimal_params()
    assert source_pin(parse_params(raw), "toy")["url"] == "http://127.0.0.1:9/toy.tgz"
    raw["download"] = {"mirror": _mirror(tmp_path / "other", SAMPLE_SHA).replace("other", "missing")}
    record = source_pin(parse_params(raw), "toy")
    assert record["pin"] is None and "SHA256SUMS" in record["problem"]


def test_the_stage_writes_one_record_per_data_set_and_experiment(in_tmp):
    params = load_params(ROOT / "params.yaml")
    if (SHARED_DATASETS / "SHA256SUMS").is_file():  # the shipped cards, through the shared mirror
        params = params.model_copy(
            update={"download": params.download.model_copy(update={"mirror": str(SHARED_DATASETS)})}
        )
    out = resolve_stage(params)
    sources = {p.stem: json.loads(p.read_text()) for p in (out / "sources").glob("*.json")}
    features = {p.stem for p in (out / "features").glob("*.json")}
    assert set(sources) == set(params.datasets) and features == set(params.experiments)
    for kind in ("train", "explain"):
        assert {p.stem for p in (out / kind).glob("*.json")} == set(params.experiments), kind
    assert all(record["pin"] for record in sources.values()), sources


def _train(raw: dict, experiment: str = "toy-cnn") -> dict:
    return train_params(parse_params(raw), experiment)["params"]


def _explain(raw: dict, experiment: str = "toy-cnn") -> dict:
    return explain_params(parse_params(raw), experiment)["params"]


def test_the_train_record_holds_every_key_train_reads_but_runtime_and_explanations():
    record = _train(minimal_params())
    train = {k.removeprefix("train.") for k in record if k.startswith("train.")}
    assert train == set(TrainParams.model_fields) - RUNTIME_KEYS - set(ADDED_OFF)
    own = {k.removeprefix("experiments.toy-cnn.") for k in record if k.startswith("experiments.")}
    assert own == {"dataset", "model", "recipe", "train_images", "model_overrides", "train_overrides"}
    assert {"datasets.toy", "models.cnn", "recipes.default"} <= set(record)


@pytest.mark.parametrize(
    ("section", "change"),
    [
        ("train", {"lr": 0.1}),
        ("train", {"nproc_per_node": 2}),  # more processes: a larger global batch
        ("experiment", {"train_overrides": {"epochs": 3}}),
        ("experiment", {"model_overrides": {"dropout": 0.4}}),
        ("model", {"augmented": True}),
        ("recipe", {"seed": 7}),
        ("card", {"grayscale": True}),
        ("model", {"dropout": 0.45}),
    ],
    ids=lambda x: json.dumps(x) if isinstance(x, dict) else x,
)
def test_what_train_reads_changes_its_record(section, change):
    raw = minimal_params()
    where = {
        "train": raw.setdefault("train", {}),
        "experiment": raw["experiments"]["toy-cnn"],
        "recipe": raw["recipes"]["default"],
        "card": raw["datasets"]["toy"],
        "model": raw["models"]["cnn"],
    }[section]
    where.update(change)
    assert _train(raw) != _train(minimal_params())


def test_explanations_and_runtime_keep_the_train_record_and_explanations_change_their_own():
    base, base_explain = _train(minimal_params()), _explain(minimal_params())
    explained = minimal_params()
    explained["experiments"]["toy-cnn"]["explain_overrides"] = {"target_layer": "features.3"}
    assert _train(explained) == base and _explain(explained) != base_explain
    section = minimal_params(explain={"patches_max_images": 3})
    assert _train(section) == base and _explain(section) != base_explain
    runtime = minimal_params(train={"device": "cpu", "num_workers": 3, "resume": False, "rdzv_id": "j2"})
    assert _train(runtime) == base and _explain(runtime) == base_explain


ON_VALUES = {"mixup_alpha": 0.2, "finetune_batch_norm": "frozen"}  # a value of each that trains otherwise


@pytest.mark.parametrize("key", sorted(ADDED_OFF))
def test_a_knob_added_later_is_in_the_train_record_only_once_set(key):
    """Off, the record is the one written before the knob existed: no cached run retrains."""
    off = _train(minimal_params())
    assert f"train.{key}" not in off
    assert _train(minimal_params(train={key: ADDED_OFF[key]})) == off
    value = ON_VALUES[key]
    on = _train(minimal_params(train={key: value}))
    assert on[f"train.{key}"] == value and on != off


def test_an_absent_override_map_and_an_empty_one_give_the_same_records():
    spelled = minimal_params()
    spelled["experiments"]["toy-cnn"].update(model_overrides={}, train_overrides={}, explain_overrides={})
    assert _train(spelled) == _train(minimal_params())
    assert _explain(spelled) == _explain(minimal_params())
