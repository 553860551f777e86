"""Near-duplicate groups: a resized, cropped or recompressed copy is grouped, distinct images are
not, and groups never straddle splits (or keep one member)."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from tests.conftest import minimal_params
from visionlab.data.near_duplicates import HASHES, fingerprint, group
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.data.split import grouped_split, stratified_split
from visionlab.params import SplitFractions, parse_params


def scene(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A photo-like image: a few coloured shapes on a gradient background, with mild noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    fade = np.linspace(0, 1, h)[:, None, None]
    background = (top * (1 - fade) + bottom * fade) * np.ones((1, w, 1))
    image = Image.fromarray(background.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y, r = rng.integers(0, w), rng.integers(0, h), rng.integers(h // 8, h // 2)
        draw.ellipse((x - r, y - 0.8 * r, x + r, y + 0.8 * r), fill=tuple(rng.integers(0, 256, 3).tolist()))
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-8, 9, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def save(image: Image.Image, path: Path, quality: int = 92) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=quality)
    return path


def variants(image: Image.Image) -> dict[str, Image.Image]:
    """The near-copies a photo collection holds: another size, a small crop, recompression.

    A perceptual hash tolerates small crops only: on these scenes a 2% crop per side moves phash
    by 4-8 bits (the threshold is 6), so the crop here trims 1% per side.
    """
    w, h = image.size
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=35)
    return {
        "half": image.resize((w // 2, h // 2), Image.Resampling.BILINEAR),
        "crop": image.crop((w // 100, h // 100, w - w // 100, h - h // 100)),
        "jpeg35": Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"),
    }


@pytest.mark.parametrize("method", sorted(HASHES))
def test_copies_are_grouped_and_distinct_images_are_not(tmp_path, method):
    files = [save(scene(seed), tmp_path / f"scene{seed}.jpg") for seed in range(12)]
    copies = [save(image, tmp_path / f"copy-{name}.jpg") for name, image in variants(scene(0)).items()]
    hashes = [fingerprint(f, method) for f in files + copies]
    groups = group(hashes, threshold=6)
    # One group: scene0 and its three copies; the eleven other scenes stay alone.
    assert groups == [[0, 12, 13, 14]]


def test_grouping_is_transitive():
    # a~b (1 bit), b~c (1 bit) but a and c are 2 bits apart: at threshold 1 still one group.
    assert group([0b000, 0b001, 0b011, 0b111_1111_0000], threshold=1) == [[0, 1, 2]]


def _items(per_class: int) -> list[tuple[str, str]]:
    return [(f"{label}/{i:03d}", label) for label in ("a", "b") for i in range(per_class)]


def test_grouped_split_keeps_groups_together_and_quotas_exact():
    items = _items(50)
    groups = [["a/000", "a/001", "a/002", "a/003"], ["a/010", "a/011"], ["b/005", "b/006", "b/007"]]
    groups += [[f"b/{i:03d}", f"b/{i + 1:03d}"] for i in range(20, 40, 2)]
    fractions = SplitFractions(train=0.7, val=0.2, test=0.1)
    split = grouped_split(items, groups, fractions, seed=1)
    for members in groups:
        assert len({split[m] for m in members}) == 1, members
    plain = stratified_split(items, fractions, seed=1)
    for label in ("a", "b"):
        counts = Counter(split[k] for k, lab in items if lab == label)
        expected = Counter(plain[k] for k, lab in items if lab == label)
        assert counts == expected == Counter(train=35, val=10, test=5)
    # Groups spread over the splits rather than all landing in train.
    assert {split[g[0]] for g in groups} != {"train"}
    # Without groups it is the plain stratified split, so data sets without copies keep theirs.
    assert grouped_split(items, [], fractions, seed=1) == plain


def _toy(root: Path) -> None:
    for label, base in (("cat", 0), ("dog", 100)):
        for i in range(20):
            save(scene(base + i), root / label / f"{i:02d}.jpg")
    for name, image in variants(scene(3)).items():
        save(image, root / "cat" / f"3-{name}.jpg")
    save(scene(105).resize((160, 120)), root / "dog" / "5-small.jpg")


def _prepare(policy: str) -> tuple[pd.DataFrame, dict]:
    raw = minimal_params(prepare={"workers": 1, "near_duplicates": {"policy": policy}})
    out = prepare_dataset(parse_params(raw), "toy")
    return pd.read_csv(out / "manifest.csv"), json.loads((out / "report.json").read_text())


def test_prepare_keeps_each_group_in_one_split_and_reports_it(in_tmp):
    _toy(in_tmp / "data/raw/toy/toy")
    manifest, report = _prepare("same_split")
    near = report["near_duplicates"]
    members = [sorted(Path(m).name for m in g["members"]) for g in near["groups"]]
    assert members == [
        ["03.jpg", "3-crop.jpg", "3-half.jpg", "3-jpeg35.jpg"],
        ["05.jpg", "5-small.jpg"],
    ]
    assert [g["classes"] for g in near["groups"]] == [["cat"], ["dog"]]
    split_of = dict(zip(manifest.path, manifest.split, strict=True))
    for g in near["groups"]:
        assert len({split_of[m] for m in g["members"]}) == 1 and g["splits"] == [split_of[g["members"][0]]]
    assert len(manifest) == 44 and report["images_kept"] == 44
    assert "## Near-duplicate groups" in (in_tmp / "data/prepared/toy/report.md").read_text()


def test_keep_one_keeps_the_largest_and_off_does_nothing(in_tmp):
    _toy(in_tmp / "data/raw/toy/toy")
    manifest, report = _prepare("keep_one")
    dropped = sorted(Path(d["path"]).name for d in report["dropped"] if d["reason"] == "near_duplicate")
    assert dropped == ["3-crop.jpg", "3-half.jpg", "3-jpeg35.jpg", "5-small.jpg"]
    assert len(manifest) == 40
    assert [Path(g["kept"][0]).name for g in report["near_duplicates"]["groups"]] == ["03.jpg", "05.jpg"]
    manifest, report = _prepare("off")
    assert len(manifest) == 44 and report["near_duplicates"]["groups"] == []
