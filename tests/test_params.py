import copy
from pathlib import Path

import pytest
import yaml

from tests.conftest import minimal_params
from visionlab.errors import ParamsError
from visionlab.params import load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]


def test_repository_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.prepare.split.train == pytest.approx(0.7)
    # Every study's model on its data set, plus our own best recipe per data set.
    by_dataset: dict[str, set[str]] = {}
    for name in params.experiments:
        by_dataset.setdefault(params.experiment(name).dataset, set()).add(params.model_of(name).arch)
    assert by_dataset["flowers"] >= {
        "handmade_cnn",
        "simple_cnn",
        "mobilenet_v2",
        "alexnet",
        "inception_v3",
        "vgg16",
        "resnet50",
    }
    assert by_dataset["kaggle_flowers"] >= {"vgg16"}
    assert by_dataset["cats_dogs"] >= {"catsdogs_cnn", "vgg16"}
    assert by_dataset["cifar10"] >= {"cifar_base", "cifar_inception", "cifar_residual"}
    assert by_dataset["caltech101_5"] >= {"caltech_cnn1", "caltech_cnn2", "caltech_cnn3", "vgg19"}
    best = {name: params.experiment(f"{name}-best").dataset for name in ("flowers", "kflowers", "catsdogs")}
    best |= {name: params.experiment(f"{name}-best").dataset for name in ("cifar", "caltech")}
    assert best == {
        "flowers": "flowers",
        "kflowers": "kaggle_flowers",
        "catsdogs": "cats_dogs",
        "cifar": "cifar10",
        "caltech": "caltech101_5",
    }
    ladder = [
        params.model_of(f"kflowers-vgg16{s}")
        for s in ("", "-dropout", "-aug", "-plateau", "-centering", "-bn")
    ]
    assert [m.head.dropout for m in ladder] == [0.0, 0.2, 0.2, 0.2, 0.2, 0.2]
    assert [m.normalize for m in ladder][-2:] == ["caffe", "caffe"] and ladder[-1].head.batch_norm
    assert params.recipe_of("kflowers-vgg16").schedule == "none"
    assert params.recipe_of("kflowers-vgg16-plateau").schedule == "plateau"


def _error(mutate) -> str:
    raw = copy.deepcopy(minimal_params())
    mutate(raw)
    with pytest.raises(ParamsError) as caught:
        parse_params(raw)
    return str(caught.value)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p.update(train={"lr": -0.1}), "params.yaml: train.lr: Input should be greater than 0"),
        (lambda p: p.update(train={"lrate": 0.1}), "params.yaml: train.lrate: unknown key"),
        (lambda p: p.update(train={"epochs": "many"}), "train.epochs: Input should be a valid integer"),
        (
            lambda p: p.update(prepare={"split": {"train": 0.7, "val": 0.2, "test": 0.2}}),
            "prepare.split: train + val + test must sum to 1 (got 1.1)",
        ),
        (
            lambda p: p.update(augment={"factor": 0}),
            "augment.factor: Input should be greater than or equal to 1",
        ),
        (lambda p: p["datasets"]["toy"].pop("source"), "datasets.toy.source: required key is missing"),
        (
            lambda p: p["datasets"]["toy"]["source"].update(sha256="abc"),
            "datasets.toy.source.sha256: String should match pattern",
        ),
        (
            lambda p: p["experiments"]["toy-cnn"].update(model="vgg"),
            "experiments.toy-cnn.model: unknown model 'vgg'",
        ),
        (
            lambda p: p["models"]["cnn"].update(base="frozen"),
            "models.cnn: a frozen base needs pretrained weights",
        ),
        (lambda p: p.update(surprise={}), "params.yaml: surprise: unknown key"),
        (
            lambda p: p.update(evaluate={"num_workers": "many"}),
            "evaluate.num_workers: expected a number of processes (0 or more) or auto (got 'many')",
        ),
        (
            lambda p: p.update(train={"num_workers": -1}),
            "train.num_workers: expected a number of processes (0 or more) or auto (got -1)",
        ),
        (
            lambda p: p["recipes"].update(big={"image_size": 299}),
            "recipes.big.image_size: a recipe cannot set image_size (cached features depend on it)",
        ),
        (
            lambda p: p["experiments"]["toy-cnn"].update(explain_overrides={"alpha": 2}),
            "experiments.toy-cnn.explain_overrides.alpha: Input should be less than 1",
        ),
    ],
)
def test_bad_values_name_their_key(mutate, expected):
    assert expected in _error(mutate)


def test_an_experiment_overrides_the_explain_section_for_itself_only():
    raw = minimal_params(explain={"patches_top_k": 3})
    raw["experiments"]["other"] = {**raw["experiments"]["toy-cnn"]}
    raw["experiments"]["toy-cnn"]["explain_overrides"] = {"target_layer": "blocks.2.0"}
    params = parse_params(raw)
    assert params.explain_of("toy-cnn").target_layer == "blocks.2.0"
    assert params.explain_of("toy-cnn").patches_top_k == 3
    assert params.explain_of("other").target_layer is None


def test_every_error_is_reported_at_once():
    message = _error(lambda p: p.update(train={"lr": 0, "batch_size": 0}))
    assert "train.lr" in message and "train.batch_size" in message


def test_unreadable_files(tmp_path):
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "missing.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(broken)


def test_stage_stops_before_work_on_bad_params(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from visionlab.data.download_stage import download_dataset
    from visionlab.stage import stage_command

    raw = minimal_params(train={"lr": -1})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(stage_command(download_dataset, "dataset"), ["--dataset", "toy"])
    assert result.exit_code == 1
    assert "train.lr" in result.output
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p.update(train={"lrr": 0.1}), "train.lrr: unknown key (did you mean 'lr'?)"),
        (
            lambda p: p["experiments"]["toy-cnn"].update(train_overides={}),
            "experiments.toy-cnn.train_overides: unknown key (did you mean 'train_overrides'?)",
        ),
        (
            lambda p: p["models"]["cnn"].update(head={"dropuot": 0.1}),
            "models.cnn.head.dropuot: unknown key (did you mean 'dropout'?)",
        ),
        (
            lambda p: p["experiments"]["toy-cnn"].update(train_overrides={"epoch": 3}),
            "experiments.toy-cnn.train_overrides.epoch: unknown key (did you mean 'epochs'?)",
        ),
        (
            lambda p: p["experiments"]["toy-cnn"].update(model="cnnn"),
            "experiments.toy-cnn.model: unknown model 'cnnn' (did you mean 'cnn'? known: cnn)",
        ),
        (lambda p: p.update(surprise={}), "params.yaml: surprise: unknown key\n"),  # nothing close
    ],
)
def test_misspelt_keys_and_names_get_a_did_you_mean(mutate, expected):
    assert expected in _error(mutate) + "\n"


def test_unknown_experiment_names_the_closest_and_every_known_one():
    params = load_params(ROOT / "params.yaml")
    with pytest.raises(ParamsError) as caught:
        params.experiment("flowers-efnet")
    message = str(caught.value)
    assert "experiments.flowers-efnet: no such experiment (did you mean 'flowers-effnet'?" in message
    assert all(name in message for name in params.experiments)


def test_train_images_decides_the_training_images():
    raw = minimal_params()
    raw["experiments"]["aug"] = {**raw["experiments"]["toy-cnn"], "train_images": "augmented"}
    raw["models"]["cnn"].pop("augmented")
    params = parse_params(raw)
    assert params.model_of("aug").augmented is True
    assert params.model_of("toy-cnn").augmented is False  # unset: the model's (default) setting


def test_train_images_and_augmented_cannot_both_be_set():
    message = _error(lambda p: p["experiments"]["toy-cnn"].update(train_images="augmented"))
    assert "models.cnn.augmented: experiments.toy-cnn.train_images decides" in message

    def both(p):
        p["models"]["cnn"].pop("augmented")
        p["experiments"]["toy-cnn"].update(train_images="prepared", model_overrides={"augmented": True})

    assert "experiments.toy-cnn.model_overrides.augmented: experiments.toy-cnn.train_images" in _error(both)


@pytest.mark.parametrize(
    ("key", "where"), [("image_size", "model_overrides.image_size"), ("amp", "train.amp")]
)
def test_train_overrides_cannot_change_cached_features(key, where):
    value = 64 if key == "image_size" else "off"
    message = _error(lambda p: p["experiments"]["toy-cnn"].update(train_overrides={key: value}))
    assert f"experiments.toy-cnn.train_overrides.{key}: cached features depend on {key}" in message
    assert f"set it in {where} instead" in message


def test_every_repository_experiment_spells_out_what_dvc_yaml_reads():
    """dvc.yaml interpolates ${item.train_images}; the override maps it no longer reads
    (tests/test_dvc_params.py: only those an experiment uses)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, experiment in raw["experiments"].items():
        assert experiment["train_images"] in ("prepared", "augmented"), name
    assert not any("augmented" in model for model in raw["models"].values())


def test_a_bad_param_is_reported_before_torch_is_imported(tmp_path):
    """The stage scripts validate params.yaml before their work module (and torch) loads."""
    import subprocess
    import sys

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["lr"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    probe = (
        "import runpy, sys; sys.argv = ['train.py', '--experiment', 'flowers-cnn'];"
        f"\ntry: runpy.run_path({str(ROOT / 'stages/train.py')!r}, run_name='__main__')"
        "\nexcept SystemExit as exc: print('exit', exc.code, 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert "train.lr: Input should be greater than 0" in result.stderr
    assert result.stdout.strip() == "exit 1 False"


def test_an_unknown_stage_target_is_reported_before_the_work_module_loads(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from visionlab.stage import stage_command

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(minimal_params()))
    monkeypatch.chdir(tmp_path)

    def work(params, name):
        raise AssertionError("the work must not start for an unknown name")

    result = CliRunner().invoke(stage_command(work, "experiment"), ["--experiment", "toy-cnm"])
    assert result.exit_code == 1
    assert "experiments.toy-cnm: no such experiment (did you mean 'toy-cnn'? known: toy-cnn)" in result.output


def test_a_model_or_an_experiment_reads_a_grey_data_set_in_colour():
    from visionlab.params.resolved import feature_inputs

    raw = minimal_params()
    raw["datasets"]["toy"]["grayscale"] = True
    raw["models"]["effnet"] = {"arch": "efficientnet_lite0", "weights": "imagenet", "base": "frozen"}
    raw["experiments"]["toy-grey"] = {"dataset": "toy", "model": "effnet", "recipe": "default"}
    raw["experiments"]["toy-colour"] = {
        "dataset": "toy",
        "model": "effnet",
        "recipe": "default",
        "model_overrides": {"grayscale": False},
    }
    params = parse_params(raw)
    assert params.grayscale_of("toy-cnn") is True and params.grayscale_of("toy-grey") is True
    assert params.grayscale_of("toy-colour") is False
    # featurize's record differs, so the colour experiment gets its own features
    assert feature_inputs(params, "toy-colour")["grayscale"] is False
    assert feature_inputs(params, "toy-grey")["grayscale"] is True


def test_auto_workers_are_the_cores_the_model_spares(monkeypatch):
    from visionlab.params.common import decoding_workers

    params = minimal_params()
    params["evaluate"] = {"num_workers": "auto"}
    assert parse_params(params).evaluate.num_workers == "auto"
    for cores, expected in ((1, 0), (2, 0), (4, 2), (6, 4), (64, 4)):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert decoding_workers("auto") == expected
    assert decoding_workers(3) == 3  # a number is taken as given


def test_a_bare_off_in_yaml_is_the_setting_off(tmp_path):
    """YAML 1.1 reads `off` as false (in params.yaml and in DVC's -S values): every setting whose
    choices include "off" takes it as written, where a user's `train.amp: off` used to fail."""
    bare_offs = "train:\n  amp: off\nprepare:\n  near_duplicates: {policy: off}\n"
    text = yaml.safe_dump(minimal_params()) + bare_offs
    (tmp_path / "params.yaml").write_text(text)
    assert yaml.safe_load(text)["train"]["amp"] is False  # what pydantic is handed
    params = load_params(tmp_path / "params.yaml")
    assert params.train.amp == "off"
    assert params.prepare.near_duplicates.policy == "off"
    finetuned = {"arch": "efficientnet_lite0", "weights": "imagenet", "base": "finetune"}
    raw = minimal_params(models={"cnn": {**finetuned, "unfreeze_from": "backbone.blocks.5"}})
    raw["models"]["cnn"]["activation_cache"] = False  # `activation_cache: off`, as YAML reads it
    assert parse_params(raw).model_of("toy-cnn").activation_cache == "off"


def test_off_is_no_wildcard_for_a_setting_without_it():
    raw = minimal_params(train={"device": False})
    with pytest.raises(ParamsError, match="train.device"):
        parse_params(raw)
