"""One tiny epoch of each model family through the real featurize, train and evaluate stages.

Generated images, a real prepare stage, a real MLflow store in the test's folder. Torchvision's
ImageNet weights cannot be downloaded here: a randomly initialised MobileNetV2 state dict is placed
in a temporary torch cache under the real file name, which exercises the same loading path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import torchvision
import yaml

from tests.conftest import minimal_params, write_toy_images
from visionlab import paths
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.data.resolve_stage import resolve_stage
from visionlab.evaluation.evaluate_stage import evaluate_experiment
from visionlab.models import load_checkpoint
from visionlab.params import parse_params
from visionlab.runtime.device import select_device, use_amp_on_cached_top
from visionlab.runtime.loaders import image_dataset
from visionlab.training.featurize_stage import featurize_experiment
from visionlab.training.train_stage import train_experiment

MODELS = {
    "handmade": {"arch": "handmade_cnn"},
    "simple": {"arch": "simple_cnn"},
    "binary": {"arch": "catsdogs_cnn", "image_size": 200},
    "cifar-base-centred": {"arch": "cifar_base", "image_size": 32, "normalize": "caffe"},
    "cifar-res": {"arch": "cifar_residual", "image_size": 32},
    "cifar-inc": {"arch": "cifar_inception", "image_size": 32},
    "caltech": {"arch": "caltech_cnn3"},
    "mobilenet-frozen": {
        "arch": "mobilenet_v2",
        "weights": "imagenet",
        "base": "frozen",
        "head": {"hidden": [16], "dropout": 0.5, "batch_norm": True, "l2": 0.01},
    },
    "effnet-finetune": {
        "arch": "efficientnet_lite0",
        "weights": "imagenet",
        "base": "finetune",
        "unfreeze_from": "backbone.blocks.6",
        "image_size": 64,
    },
}


@pytest.fixture
def project(in_tmp, tmp_path_factory, monkeypatch):
    torch_home = tmp_path_factory.mktemp("torch-home")
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
    cached = torch_home / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.mobilenet_v2().state_dict(), cached)

    write_toy_images(in_tmp, size=(72, 64))
    models = {
        name: {"weights": "none", "base": "trainable", "augmented": False, **spec}
        for name, spec in MODELS.items()
    }
    raw = minimal_params(
        models=models,
        experiments={name: {"dataset": "toy", "model": name, "recipe": "tiny"} for name in MODELS},
        recipes={"tiny": {"epochs": 2, "head_epochs": 1, "batch_size": 4, "num_workers": 0}},
        train={"image_size": 64},
        evaluate={
            "num_workers": 0,
            "batch_size": 8,
            "tta": ["hflip"],
            "robustness": ["downscale_16", "jpeg_30"],
        },
    )
    params = parse_params(raw)
    prepare_dataset(params, "toy")
    resolve_stage(params)  # featurize reads its record, as after `dvc repro resolve`
    return params


@pytest.mark.slow
@pytest.mark.parametrize("experiment", list(MODELS))
def test_each_model_family_trains_and_evaluates_through_the_stages(project, experiment):
    params = project
    featurize_experiment(params, experiment)
    train_experiment(params, experiment)
    evaluate_experiment(params, experiment)

    model_dir = Path("data/models") / experiment
    summary = json.loads((model_dir / "summary.json").read_text())
    history = pd.read_csv(f"results/{experiment}/history.csv")
    spec = params.model_of(experiment)
    if spec.base == "finetune":
        assert history.phase.tolist() == ["head", "finetune"]
        assert history.epoch.tolist() == [1, 2]
    else:
        assert history.epoch.tolist() == [1, 2]  # patience 5: two epochs cannot stop early
    assert not summary["stopped_early"] and summary["epochs_run"] == 2
    expected = {
        "frozen": "cached features",
        "finetune": "cached features, then cached activations at backbone.blocks.6",
        "trainable": "images",
    }
    assert summary["trained_on"] == expected[spec.base]
    info = json.loads((Path("data/features") / experiment / "info.json").read_text())
    if spec.base == "finetune":  # the cache at the unfreeze point: 192 channels enter blocks.6
        assert info["activation_shape"] == [192, 2, 2] and info["activation_dtype"] == "bfloat16"
        cache = torch.load(f"data/features/{experiment}/train.pt", weights_only=True)
        assert cache["activations"].dtype == torch.bfloat16 and cache["features"].shape[1] == 1280
    metrics = json.loads(Path(f"results/{experiment}/metrics.json").read_text())
    assert {split: metrics[split]["images"] for split in ("train", "val", "test")} == {
        "train": 14,
        "val": 4,
        "test": 2,
    }
    for name in ("test_tta_hflip", "test_downscale_16", "test_jpeg_30"):  # beside the plain test figures
        assert metrics[name]["images"] == 2 and 0 <= metrics[name]["accuracy"] <= 1
    for name in ("val_tta_hflip", "val_downscale_16", "val_jpeg_30"):  # what choices are made on
        scored = metrics[name]
        assert scored["images"] == 4 and scored["correct"] == round(scored["accuracy"] * 4)
    # Each test copy's answer per image beside the plain one, for paired tests on a degraded copy.
    predictions = pd.read_csv(f"data/eval/{experiment}/predictions.csv")
    for name in ("tta_hflip", "downscale_16", "jpeg_30"):
        assert set(predictions[f"predicted_{name}"]) <= {
            c[2:] for c in predictions.columns if c.startswith("p_")
        }
        assert (
            predictions[f"correct_{name}"] == (predictions[f"predicted_{name}"] == predictions.label)
        ).all()
        assert predictions[f"correct_{name}"].sum() == metrics[f"test_{name}"]["correct"]
    # Validation's answers per image too, whatever ran them (featurize's cache or the whole net): the
    # report tests the row chosen on validation against the runner-up there.
    answers = pd.read_csv(f"data/eval/{experiment}/val_predictions.csv")
    assert len(answers) == 4 and answers.correct.sum() == metrics["val"]["correct"]
    assert (answers.correct == (answers.predicted == answers.label)).all()
    # Wall-clock figures live beside the model, not in it (model.pt stays reproducible).
    assert "train_seconds" not in summary
    timing = json.loads(Path(f"results/{experiment}/training.json").read_text())
    training = metrics["training"]
    assert (training["epochs"], training["seconds"]) == (2, timing["train_seconds"])
    # 14 training images twice in train_seconds (rounded to the millisecond)
    assert training["images_per_second"] * training["seconds"] == pytest.approx(
        28, rel=0.01, abs=training["images_per_second"] * 0.0006
    )
    # The compute that produced the model: a frozen (or cached fine-tuned) base's features, then training.
    assert "seconds" not in info  # timing stays out of the cache folder: the same features hash the same
    featurized = json.loads(Path(f"results/{experiment}/featurize.json").read_text())["seconds"]
    features = featurized or 0.0
    assert (spec.base != "trainable") == (featurized is not None) == (features > 0)
    assert timing["featurize_seconds"] == pytest.approx(features, abs=1e-3)
    assert timing["compute_seconds"] == pytest.approx(features + timing["train_seconds"], abs=2e-3)
    assert metrics["training"]["compute_seconds"] == timing["compute_seconds"]
    assert metrics["training"]["featurize_seconds"] == timing["featurize_seconds"]
    # The run page lists the data set inputs it saw.
    from mlflow.tracking import MlflowClient

    record = json.loads((model_dir / "mlflow_run.json").read_text())
    logged = MlflowClient(record["tracking_uri"]).get_run(record["run_id"])
    inputs = logged.inputs.dataset_inputs
    assert sorted(i.dataset.name for i in inputs) == ["toy/test", "toy/train", "toy/val"]
    if spec.base == "finetune":  # phase two on the cache: float32 on a CPU under train.amp: auto
        settings = params.recipe_of(experiment)
        expected = use_amp_on_cached_top(select_device(settings.device), settings.amp)
        assert logged.data.params["finetune_amp"] == str(expected)

    # The test accuracy is what the saved model scores on the two test images, run here afresh.
    checkpoint = load_checkpoint(model_dir / "model.pt")
    model = checkpoint.model
    size = params.image_size_of(experiment)
    rows = pd.read_csv("data/prepared/toy/manifest.csv").query("split == 'test'")
    images = image_dataset(rows, checkpoint.classes, size, model, params.dataset("toy").grayscale)
    with torch.no_grad():
        logits = model.eval()(torch.stack([images[i][0] for i in range(len(images))]))
    assert logits.shape == (2, 2)  # the binary single-logit net too
    correct = (logits.argmax(1) == torch.tensor(images.labels)).float().mean().item()
    assert metrics["test"]["accuracy"] == pytest.approx(correct)


def test_missing_torchvision_weights_stop_the_stage_with_the_fix(project, monkeypatch, tmp_path):
    """Through the stage's own entry point, as `dvc repro` runs it: one message, no traceback."""
    from click.testing import CliRunner

    from visionlab.stage import stage_command

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("VISIONLAB_OFFLINE", "1")  # no download attempt, whatever the network
    Path("params.yaml").write_text(yaml.safe_dump(project.model_dump(mode="json")))
    result = CliRunner().invoke(
        stage_command(featurize_experiment, "experiment"), ["--experiment", "mobilenet-frozen"]
    )
    assert result.exit_code == 1, result.output
    message = result.output
    assert message.startswith("error: ") and "Traceback" not in message
    assert "mobilenet_v2-b0353104.pth" in message and "weights: none" in message
    assert str(tmp_path / "empty-cache") in message
    assert not Path("data/features/mobilenet-frozen").exists()


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler of the stage can swallow it."""


@pytest.mark.slow
def test_the_train_stage_resumes_a_killed_two_phase_run_to_the_same_weights(project, monkeypatch):
    """Through the real stage: a fine-tuning run (head phase, then unfrozen top blocks) dies right
    after the checkpoint of its third epoch (second phase); rerun, it ends where an uninterrupted
    run ends, bit for bit."""
    from visionlab.training.resume import ResumeState

    params = project
    experiment = "effnet-finetune"
    model_pt = Path("data/models") / experiment / "model.pt"
    params = params.model_copy(update={"recipes": {"tiny": {**params.recipes["tiny"], "epochs": 4}}})
    featurize_experiment(params, experiment)

    train_experiment(params, experiment)
    uninterrupted = torch.load(model_pt, weights_only=True)["state_dict"]
    history = pd.read_csv(f"results/{experiment}/history.csv")
    assert history.phase.tolist() == ["head", "finetune", "finetune", "finetune"]
    assert not any(Path("data/.resume").rglob("*.pt")), "a finished run leaves no resume state"

    saves = []
    real_save = ResumeState.save

    def save_then_die(state, path, key):
        real_save(state, path, key)
        saves.append(path.name)
        if len(saves) == 3:
            raise _Killed

    monkeypatch.setattr(ResumeState, "save", save_then_die)
    with pytest.raises(_Killed):
        train_experiment(params, experiment)
    assert saves == ["head.pt", "finetune.pt", "finetune.pt"]
    monkeypatch.setattr(ResumeState, "save", real_save)

    train_experiment(params, experiment)
    resumed = torch.load(model_pt, weights_only=True)
    timing = json.loads(Path(f"results/{experiment}/training.json").read_text())
    assert timing["resumed_after_epoch"] == 1 + 2  # the head phase's epoch, two of phase two
    again = pd.read_csv(f"results/{experiment}/history.csv")
    assert again.drop(columns="seconds").equals(history.drop(columns="seconds"))
    for name, tensor in uninterrupted.items():
        assert torch.equal(tensor, resumed["state_dict"][name]), name


def test_a_finetune_run_capped_to_one_epoch_trains_the_unfrozen_top_alone(project):
    """``train.epochs_cap: 1`` leaves no head epoch (``cap // 2``): the run is the fine-tuning phase
    alone, starting from the frozen base and the new head, numbered from epoch 1."""
    experiment = "effnet-finetune"
    params = project.model_copy(update={"train": project.train.model_copy(update={"epochs_cap": 1})})
    assert params.recipe_of(experiment).head_epochs == 0
    featurize_experiment(params, experiment)
    train_experiment(params, experiment)
    history = pd.read_csv(f"results/{experiment}/history.csv")
    assert history.phase.tolist() == ["finetune"] and history.epoch.tolist() == [1]
    summary = json.loads(Path(f"data/models/{experiment}/summary.json").read_text())
    assert summary["epochs_run"] == 1 and summary["best_epoch"] == 1


def test_two_identical_runs_write_byte_identical_model_files(project):
    """model.pt and summary.json hold nothing a rerun changes (wall-clock figures go to
    results/<experiment>/training.json), so DVC sees a forced retrain with the same weights as
    unchanged."""
    experiment = "cifar-inc"  # trains in a second at 32 px
    model_dir = Path("data/models") / experiment
    written = []
    for _ in range(2):
        train_experiment(project, experiment)
        written.append({name: (model_dir / name).read_bytes() for name in ("model.pt", "summary.json")})
    assert written[0] == written[1]
    timing = json.loads(Path(f"results/{experiment}/training.json").read_text())
    assert timing["train_seconds"] > 0 and timing["train_images_per_second"] > 0
    assert "train_seconds" not in json.loads(written[1]["summary.json"])


def test_two_identical_featurize_runs_write_a_byte_identical_cache(project):
    """The cache folder (featurize's DVC output) holds nothing a rerun changes; its seconds go to
    results/<experiment>/featurize.json. A featurize that reruns after an edit that leaves the
    features as they were then leaves train cached, instead of a retrain of up to an hour."""
    experiment = "effnet-finetune"
    folder = paths.features_dir(experiment)
    written = []
    for _ in range(2):
        featurize_experiment(project, experiment)
        written.append({p.name: p.read_bytes() for p in sorted(folder.iterdir())})
    assert set(written[0]) == {"info.json", "train.pt", "val.pt"} and written[0] == written[1]
    assert json.loads(Path(f"results/{experiment}/featurize.json").read_text())["seconds"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["mobilenet-frozen", "effnet-finetune"])
def test_evaluate_scores_train_and_val_on_the_featurize_cache_not_the_images(project, experiment):
    """A frozen base's features and a fine-tuned base's activations at the cut are fixed functions
    of the images: evaluate runs only the trained part on them, as the train stage did, so its
    train and val figures need no image and match the training history."""
    featurize_experiment(project, experiment)
    train_experiment(project, experiment)
    manifest = pd.read_csv("data/prepared/toy/manifest.csv")
    for path in manifest.query("split != 'test'").path:
        Path(path).rename(f"{path}.gone")  # any read of a train or val image now fails

    # Validation's TTA and degraded copies are new images, read from the files (what TTA and a
    # robust recipe are chosen on); the plain figures are not.
    with pytest.raises(FileNotFoundError, match="data/raw/toy"):
        evaluate_experiment(project, experiment)
    plain = project.evaluate.model_copy(update={"tta": [], "robustness": []})
    evaluate_experiment(project.model_copy(update={"evaluate": plain}), experiment)
    metrics = json.loads(Path(f"results/{experiment}/metrics.json").read_text())
    assert (metrics["train"]["images"], metrics["val"]["images"], metrics["test"]["images"]) == (14, 4, 2)
    history = pd.read_csv(f"results/{experiment}/history.csv")
    best = json.loads((Path("data/models") / experiment / "summary.json").read_text())["best_epoch"]
    # The weights kept are the best epoch's; its validation loss came from the same cache (bfloat16
    # autocast in one phase or the other: hence not to the last digit).
    assert metrics["val"]["loss"] == pytest.approx(history.val_loss[best - 1], rel=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["handmade", "effnet-finetune"])
def test_featurize_and_train_never_read_the_test_split(project, experiment):
    """Selection (early stopping, the best epoch's weights, the registry) sees train and validation
    only: with every test image gone, featurize and train still run; evaluate then needs them."""
    manifest = pd.read_csv("data/prepared/toy/manifest.csv")
    test_images = list(manifest.query("split == 'test'").path)
    assert test_images
    for path in test_images:
        Path(path).rename(f"{path}.gone")  # any read of a test image now fails
    featurize_experiment(project, experiment)
    train_experiment(project, experiment)
    summary = json.loads((Path("data/models") / experiment / "summary.json").read_text())
    assert summary["best_epoch"] >= 1
    with pytest.raises(FileNotFoundError, match="data/raw/toy"):  # evaluate does read them
        evaluate_experiment(project, experiment)
    for path in test_images:
        Path(f"{path}.gone").rename(path)
    evaluate_experiment(project, experiment)
    assert json.loads(Path(f"results/{experiment}/metrics.json").read_text())["test"]["images"] == 2


@pytest.mark.parametrize("batch_norm", ["train", "frozen"])
def test_finetune_batch_norm_frozen_keeps_the_unfrozen_blocks_on_their_running_statistics(
    project, batch_norm
):
    """``train.finetune_batch_norm: frozen`` fine-tunes blocks.6 with its batch norms in eval mode:
    its convolutions change, its pretrained running statistics do not; ``train`` (the default)
    moves them towards the new images."""
    from visionlab.models import build_model

    experiment = "effnet-finetune"
    train = project.train.model_copy(update={"epochs_cap": 1, "finetune_batch_norm": batch_norm})
    params = project.model_copy(update={"train": train})
    resolve_stage(params)
    featurize_experiment(params, experiment)
    train_experiment(params, experiment)
    trained = torch.load(Path("data/models") / experiment / "model.pt", weights_only=True)["state_dict"]
    pretrained = build_model(params.model_of(experiment), 2).state_dict()  # Lite0's ImageNet weights

    def top(state: dict, ending: str) -> list[torch.Tensor]:
        return [v for k, v in state.items() if k.startswith("backbone.blocks.6.") and k.endswith(ending)]

    statistics = top(trained, "running_mean") + top(trained, "running_var")
    before = top(pretrained, "running_mean") + top(pretrained, "running_var")
    assert len(statistics) == len(before) == 6  # blocks.6 is one inverted residual: three batch norms
    kept = all(torch.equal(a, b) for a, b in zip(statistics, before, strict=True))
    assert kept == (batch_norm == "frozen")
    # The rest of the block trains either way: its kernels and batch norms' scales move.
    assert not torch.equal(top(trained, "conv_pwl.weight")[0], top(pretrained, "conv_pwl.weight")[0])
    assert not torch.equal(top(trained, "bn3.weight")[0], top(pretrained, "bn3.weight")[0])
