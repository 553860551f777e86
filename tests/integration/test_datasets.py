"""Every data set card on its shared sample, through the real download and prepare stages, over
HTTP on 127.0.0.1. Expected counts were worked out from the samples (see ../shared/datasets/README.md).
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import write_image
from tests.http_server import serve
from visionlab.data.cifar import load_pickle
from visionlab.data.download_stage import download_dataset
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.errors import DownloadError, UnsafeArchiveError
from visionlab.params import parse_params

REPO = Path(__file__).resolve().parents[2]
FAKE_KEY = "fake-kaggle-key-7c1e9d0b4a"

pytestmark = pytest.mark.slow


def repo_params(**download) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["download"].update(backoff_s=0, **download)
    return raw


@pytest.fixture
def project(in_tmp):
    (in_tmp / "config").symlink_to(REPO / "config")
    return in_tmp


def build(project, name, mirror):
    params = parse_params(repo_params(mirror=mirror))
    download_dataset(params, name, progress=False)
    out = prepare_dataset(params, name)
    return json.loads((out / "report.json").read_text()), pd.read_csv(out / "manifest.csv")


def test_tensorflow_flowers(project, shared_datasets):
    with serve(shared_datasets) as (url, _):
        report, _ = build(project, "flowers", url)
    # 68 photos of the sample are on the curated exclusion list (the flower is not the subject).
    after = {"daisy": 194, "dandelion": 198, "roses": 178, "sunflowers": 183, "tulips": 179}
    assert report["after"] == after
    # flower_photos/LICENSE.txt is not an image
    assert report["dropped_by_reason"] == {"excluded_by_list": 68, "not_an_image": 1}
    assert report["split_totals"] == {"train": 651, "val": 188, "test": 93}


def test_kaggle_flowers_by_mirror(project, shared_datasets):
    with serve(shared_datasets) as (url, _):
        report, _ = build(project, "kaggle_flowers", url)
    assert report["classes"] == ["daisy", "dandelion", "rose", "sunflower", "tulip"]
    assert report["after"] == dict.fromkeys(report["classes"], 40)
    assert report["split_totals"] == {"train": 140, "val": 40, "test": 20}


def test_cats_and_dogs_faults(project, shared_datasets):
    with serve(shared_datasets) as (url, _):
        report, manifest = build(project, "cats_dogs", url)
    reasons = {d["path"].split("PetImages/")[1]: d["reason"] for d in report["dropped"]}
    assert reasons == {
        "Cat/666.jpg": "empty",
        "Cat/Thumbs.db": "not_an_image",
        "Dog/11702.jpg": "truncated",
        "Dog/Thumbs.db": "not_an_image",
    }
    repairs = {r["path"].split("PetImages/")[1]: r["repair"] for r in report["repaired"]}
    assert repairs == {
        "Cat/200.jpg": "PNG data under a .jpg name, decoded as PNG",
        "Dog/200.jpg": "CMYK converted to RGB",
    }
    assert report["before"] == {"Cat": 203, "Dog": 203}
    assert report["after"] == {"Cat": 201, "Dog": 201}
    assert {"data/raw/cats_dogs/PetImages/Cat/200.jpg", "data/raw/cats_dogs/PetImages/Dog/200.jpg"} <= set(
        manifest.path
    )


def test_cifar10_keeps_the_official_test_batch(project, shared_datasets):
    with serve(shared_datasets) as (url, _):
        report, manifest = build(project, "cifar10", url)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert report["classes"] == names
    assert sum(report["after"].values()) == 6000
    assert report["split_totals"] == {"train": 3890, "val": 1110, "test": 1000}
    assert report["official_test_split"] is True
    assert manifest[manifest.split == "test"].path.str.contains("/test_batch-").all()
    assert not manifest[manifest.split != "test"].path.str.contains("/test_batch-").any()
    sample = Path(manifest.path[0])
    assert sample.is_file() and sample.suffix == ".png"
    assert json.loads(Path("data/prepared/cifar10/classes.json").read_text()) == names


def test_caltech_five_classes_leave_the_rest_out(project, shared_datasets):
    with serve(shared_datasets) as (url, _):
        report, _ = build(project, "caltech101_5", url)
    assert report["after"] == {
        "bonsai": 128,
        "hawksbill": 100,
        "menorah": 87,
        "scorpion": 84,
        "sunflower": 85,
    }
    assert report["left_out_by_choice"] == {"BACKGROUND_Google": 30, "Faces_easy": 20, "airplanes": 20}
    assert report["dropped_by_reason"] == {}  # left out by choice is not bad data
    assert report["converted_to_rgb"] == {"L": 10}


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_restricted_unpickler_refuses_code(tmp_path):
    hostile = tmp_path / "data_batch_1"
    hostile.write_bytes(pickle.dumps({b"data": _Boom()}, protocol=2))
    with pytest.raises(UnsafeArchiveError, match=r"refused: not a plain CIFAR-10 pickle .*posix.system"):
        load_pickle(hostile)
    assert not (tmp_path / "pwned.txt").exists() and not Path("pwned.txt").exists()
    sneaky = tmp_path / "batches.meta"
    sneaky.write_bytes(pickle.dumps({"label_names": io.BytesIO}, protocol=2))
    with pytest.raises(UnsafeArchiveError, match="_io.BytesIO is not allowed"):
        load_pickle(sneaky)


def test_kaggle_credentials_never_leak(project, shared_datasets, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "visionlab-ci")
    monkeypatch.setenv("KAGGLE_KEY", FAKE_KEY)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(project / "no-kaggle-dir"))
    # Credentials but no network: the real kaggle package fails, and says so without the key.
    raw = repo_params()
    with pytest.raises(DownloadError) as caught:
        download_dataset(parse_params(raw), "kaggle_flowers", progress=False)
    assert "alxmamaev/flowers-recognition" in str(caught.value) and FAKE_KEY not in str(caught.value)
    # Through the real stage scripts with a mirror: nothing written or printed holds the key.
    (project / "stages").symlink_to(REPO / "stages")
    with serve(shared_datasets) as (url, _):
        raw["download"]["mirror"] = url
        (project / "params.yaml").write_text(yaml.safe_dump(raw))
        logs = ""
        for stage in ("download", "prepare"):
            result = subprocess.run(
                [sys.executable, f"stages/{stage}.py", "--dataset", "kaggle_flowers"],
                env={**os.environ, "VISIONLAB_LOG_LEVEL": "DEBUG"},
                capture_output=True,
                text=True,
                check=False,
            )
            logs += result.stdout + result.stderr
            assert result.returncode == 0, logs
    assert FAKE_KEY not in logs
    for path in project.rglob("*"):
        if path.is_file() and not path.is_symlink() and "config" not in path.parts:
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_missing_kaggle_credentials_say_how_to_fix(project, monkeypatch):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(project / "none"))
    with pytest.raises(
        DownloadError, match="no Kaggle credentials found; set KAGGLE_USERNAME and KAGGLE_KEY"
    ):
        download_dataset(parse_params(repo_params()), "kaggle_flowers", progress=False)


def test_sixth_data_set_from_a_card_alone(project):
    site = project / "site"
    archive = site / "shapes.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for label in ("circle", "square", "star"):
            for i in range(10):
                image = write_image(
                    project / "tmpimg" / f"{label}{i}.png",
                    seed=100 * ("circle", "square", "star").index(label) + i,
                    fmt="PNG",
                )
                zf.write(image, f"shapes-v1/images/{label}/{i}.png")
        zf.writestr("shapes-v1/README", "toy shapes")
    import hashlib

    raw = repo_params()
    raw["datasets"]["shapes"] = {
        "source": {"url": "", "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()},
        "root": "shapes-v1/images",
    }
    with serve(site) as (url, _):
        raw["datasets"]["shapes"]["source"]["url"] = f"{url}/shapes.zip"
        card_params = parse_params(copy.deepcopy(raw))
        download_dataset(card_params, "shapes", progress=False)
        out = prepare_dataset(card_params, "shapes")
    report = json.loads((out / "report.json").read_text())
    assert report["classes"] == ["circle", "square", "star"]
    assert report["after"] == {"circle": 10, "square": 10, "star": 10}
    assert report["split_totals"] == {"train": 21, "val": 6, "test": 3}


def test_cifar_label_names_cannot_name_paths(tmp_path):
    from visionlab.data.cifar import label_names

    (tmp_path / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": [b"cat", b"../../etc"]}, protocol=2)
    )
    with pytest.raises(UnsafeArchiveError, match="label names must be unique plain names"):
        label_names(tmp_path)
