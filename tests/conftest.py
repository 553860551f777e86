"""Shared fixtures: generated images and the shared samples of the real archives."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def image_bytes(
    mode: str = "RGB", size: tuple[int, int] = (48, 40), fmt: str = "JPEG", seed: int = 0
) -> bytes:
    """A small random image of the given mode, encoded as ``fmt``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode == "P":
        image = image.quantize(16)
    elif mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def flower_photos(folder: Path, count: int, shared: Path = SHARED_DATASETS) -> list[Path]:
    """The first ``count`` JPEGs of the shared TensorFlow flowers sample, extracted into ``folder``
    (real photos of several sizes; tests/test_predict_stream.py and benchmarks/predict_speed.py)."""
    import tarfile

    found = []
    with tarfile.open(shared / "flower_photos.tgz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".jpg"):
                tar.extract(member, folder, filter="data")
                found.append(folder / member.name)
                if len(found) == count:
                    break
    return found


def write_image(path: Path, seed: int = 0, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(seed=seed, **kwargs))
    return path


def photo_folder(
    root: Path, per_class: dict[str, int], size: tuple[int, int] = (120, 90), first_seed: int = 0
) -> Path:
    """A user's folder of photos: ``root/<class>/<n>.jpg``, each a different generated image."""
    seed = first_seed
    for label, count in per_class.items():
        for n in range(count):
            write_image(root / label / f"{n}.jpg", seed=seed, size=size)
            seed += 1
    return root


# A small CNN trained from scratch at 32 px: the cheapest real model for stage-level tests.
TOY_CNN = {
    "arch": "cifar_residual",
    "weights": "none",
    "base": "trainable",
    "augmented": False,
    "image_size": 32,
}


def write_toy_images(root: Path, size: tuple[int, int]) -> None:
    """Ten generated photos per class (cat, dog) of ``minimal_params``'s ``toy`` data set under ``root``."""
    for label, seed in (("cat", 0), ("dog", 100)):
        for i in range(10):
            write_image(root / "data/raw/toy/toy" / label / f"{i}.jpg", seed=seed + i, size=size)


@pytest.fixture
def shared_datasets() -> Path:
    if not (SHARED_DATASETS / "SHA256SUMS").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the shared samples are missing from {SHARED_DATASETS}")
        pytest.skip(f"shared samples not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from an empty project folder, as stages run from the project root."""
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VISIONLAB_PROJECT_ROOT", raising=False)
    return tmp_path


def minimal_params(**sections) -> dict:
    """A valid params mapping with one data set, one model and one experiment."""
    params = {
        "datasets": {
            "toy": {
                "source": {"url": "http://127.0.0.1:9/toy.tgz"},
                "root": "toy",
            }
        },
        "models": {
            "cnn": {"arch": "handmade_cnn", "weights": "none", "base": "trainable", "augmented": False}
        },
        "recipes": {"default": {}},
        "experiments": {"toy-cnn": {"dataset": "toy", "model": "cnn", "recipe": "default"}},
    }
    params.update(sections)
    return params


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.gpu`` tests skip cleanly where no CUDA device exists (``-m gpu`` included)."""
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if not gpu_tests:
        return
    import torch  # only when a GPU test was collected: the import costs seconds

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in gpu_tests:
        item.add_marker(skip)
