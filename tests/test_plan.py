"""`visionlab plan`: image counts, the estimate's arithmetic, and the command on a tiny project."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import minimal_params
from visionlab.params import load_params, parse_params
from visionlab.training import planning

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
    counts = planning.image_counts(parse_params(minimal_params()), "toy", tmp_path)
    assert counts == planning.Counts(7, 2, 1, measured=True)


def test_counts_before_download_come_from_the_archive_and_the_card(tmp_path):
    params = load_params(ROOT / "params.yaml")
    flowers = planning.image_counts(params, "flowers", tmp_path)
    assert not flowers.measured and flowers.total == pytest.approx(3670, abs=2)
    assert flowers.train == round(3670 * 0.7)
    cats = planning.image_counts(params, "cats_dogs", tmp_path)
    assert cats.total == pytest.approx(2 * 2000, abs=2)  # max_per_class x classes, not 25,000
    assert planning.image_counts(parse_params(minimal_params()), "toy", tmp_path) is None  # unknown archive


def test_the_estimate_is_images_times_epochs_over_measured_rates():
    raw = minimal_params(train={"epochs": 4})
    raw["augment"] = {"factor": 3}
    raw["experiments"]["aug"] = {**raw["experiments"]["toy-cnn"], "train_images": "augmented"}
    raw["models"]["cnn"].pop("augmented")
    params = parse_params(raw)
    counts = planning.Counts(100, 20, 10, measured=True)
    size = params.image_size_of("toy-cnn")
    cache = {("handmade_cnn", size, False): (50.0, 10.0)}  # forward, training images/s
    plain = planning.estimate(params, "toy-cnn", counts, None, cache).seconds
    assert plain == pytest.approx(4 * (100 / 10 + 20 / 50) + 130 / 50)
    augmented = planning.estimate(params, "aug", counts, None, cache).seconds
    assert augmented == pytest.approx(4 * (300 / 10 + 20 / 50) + 130 / 50)


def test_plan_measures_this_machine_and_says_how(in_tmp):
    from click.testing import CliRunner

    from visionlab.cli import main

    raw = minimal_params(train={"image_size": 32, "epochs": 2})
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(raw))
    _manifest(in_tmp, 40, 10, 10)
    result = CliRunner().invoke(main, ["plan", "--study", "toy"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("toy:"))
    assert "1 experiments, 40/10/10 train/val/test images (prepared): about " in line
    assert line.endswith(" s") or line.endswith(" min") or line.endswith(" h")
    assert "how: per network, images/s of 4-image synthetic batches forward" in result.output
    assert "Not counted: downloads" in result.output

    typo = CliRunner().invoke(main, ["plan", "--study", "toyy"])
    assert typo.exit_code == 1 and "did you mean 'toy'?" in typo.output


def test_a_study_without_kaggle_credentials_is_named_with_how_to_enable_it(tmp_path, monkeypatch):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "none"))
    params = load_params(ROOT / "params.yaml")
    why = planning.unavailable(params, "kaggle_flowers")
    assert why.startswith("no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY")
    assert "download.mirror" in why
    assert planning.unavailable(params, "flowers") is None
