import hashlib

import pandas as pd
import pytest

from tests.conftest import minimal_params, write_image
from visionlab.data.augment_stage import augment_dataset
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.params import parse_params


@pytest.fixture
def prepared(in_tmp):
    for label in ("a", "b"):
        for i in range(10):
            write_image(
                in_tmp / f"data/raw/toy/toy/{label}/{i}.jpg",
                seed=100 * ("a", "b").index(label) + i,
                size=(60, 50),
            )
    return in_tmp


def _run(factor, seed=1, workers=2):
    params = parse_params(
        minimal_params(
            prepare={"workers": 1},
            augment={"factor": factor, "image_size": 32, "seed": seed, "workers": workers},
        )
    )
    prepare_dataset(params, "toy")
    out = augment_dataset(params, "toy")
    return pd.read_csv(out / "manifest.csv"), out


def _digests(manifest):
    return {
        p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in manifest.path[manifest.copy_index > 0]
    }


def test_factor_multiplies_only_the_training_split(prepared):
    manifest, out = _run(factor=4)
    prepared_manifest = pd.read_csv(prepared / "data/prepared/toy/manifest.csv")
    train = prepared_manifest[prepared_manifest.split == "train"]
    assert len(manifest) == 4 * len(train)
    assert set(manifest.split) == {"train"}
    assert set(manifest.source) == set(train.path)
    assert manifest.groupby("source").size().eq(4).all()
    untouched = set(prepared_manifest.path[prepared_manifest.split != "train"])
    assert untouched.isdisjoint(manifest.source)
    assert all((prepared / p).is_file() for p in manifest.path)
    assert len(list((out / "images").rglob("*.jpg"))) == 3 * len(train)


def test_augmentation_is_seeded_whatever_the_worker_count(prepared):
    first = _digests(_run(factor=3, seed=5, workers=1)[0])
    second = _digests(_run(factor=3, seed=5, workers=2)[0])
    third = _digests(_run(factor=3, seed=6, workers=2)[0])
    assert first == second
    assert first != third


def test_factor_one_writes_no_copies(prepared):
    manifest, _ = _run(factor=1)
    assert (manifest.copy_index == 0).all()


def test_degradation_transforms_are_params_and_change_the_copies():
    """augment.transforms.downscale/blur/jpeg: albumentations steps, each off at 0."""
    import numpy as np

    from visionlab.data.augment_stage import build_transform
    from visionlab.params import TransformParams

    plain = TransformParams(hflip=0, zoom=0, translate=0, contrast=0, rotate=0, shear=0)
    assert build_transform(plain).transforms == []
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for name in ("downscale", "blur", "jpeg"):
        transform = build_transform(plain.model_copy(update={name: 1.0}))
        assert len(transform.transforms) == 1
        out = transform(image=image)["image"]
        assert out.shape == image.shape and not np.array_equal(out, image), name

        # Each loses detail: noise survives less of it than the original holds.
        def detail(pixels):
            return np.abs(np.diff(pixels.astype(float), axis=1)).mean()

        assert detail(out) < detail(image), name
