"""A folder source already split by its owner keeps that split file by file; the CSV of the
missing splits are carved from its train/; copies across the owner's splits are reported, not moved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import minimal_params, write_image
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.errors import VisionlabError
from visionlab.params import parse_params


def _split_folder(root: Path, layout: dict[str, dict[str, int]]) -> dict[str, str]:
    """Write ``root/<split folder>/<class>/<n>.jpg``; return each file's split folder by path."""
    where, seed = {}, 0
    for folder, classes in layout.items():
        for label, count in classes.items():
            for n in range(count):
                path = write_image(root / folder / label / f"{n}.jpg", seed=seed, size=(40, 32))
                where[str(path)] = folder
                seed += 1
    return where


def _params(folder: Path, **prepare):
    raw = minimal_params(prepare={"workers": 1, **prepare})
    raw["datasets"]["toy"] = {"source": {"folder": str(folder)}}
    raw["folders"] = {"toy": str(folder)}
    return parse_params(raw)


def _manifest(in_tmp: Path) -> pd.DataFrame:
    return pd.read_csv(in_tmp / "data/prepared/toy/manifest.csv")


def test_train_val_test_folders_keep_every_file_where_the_owner_put_it(in_tmp):
    folder = in_tmp / "photos"
    where = _split_folder(
        folder, {"train": {"a": 8, "b": 8}, "validation": {"a": 3, "b": 3}, "test": {"a": 2, "b": 3}}
    )

    prepare_dataset(_params(folder), "toy")

    manifest = _manifest(in_tmp)
    assert len(manifest) == len(where)
    named = {"train": "train", "validation": "val", "test": "test"}
    for row in manifest.itertuples():
        assert row.split == named[where[row.path]], row.path
    report = json.loads((in_tmp / "data/prepared/toy/report.json").read_text())
    assert report["owner_split"] == ["test", "train", "val"]


def test_a_missing_split_is_carved_from_train_with_the_cards_fractions(in_tmp):
    folder = in_tmp / "photos"
    where = _split_folder(folder, {"train": {"a": 20, "b": 20}, "test": {"a": 4, "b": 4}})

    prepare_dataset(_params(folder, split={"train": 0.7, "val": 0.2, "test": 0.1}), "toy")

    manifest = _manifest(in_tmp)
    tested = set(manifest[manifest.split == "test"].path)
    assert tested == {p for p, f in where.items() if f == "test"}  # nothing moved in or out of test
    val = manifest[manifest.split == "val"]
    assert all(where[p] == "train" for p in val.path)
    # val : train = 0.2 : 0.7 of the owner's 20 train images per class
    assert val.label.value_counts().to_dict() == {"a": 4, "b": 4}


def test_copies_across_the_owners_splits_are_reported_not_moved(in_tmp):
    folder = in_tmp / "photos"
    _split_folder(folder, {"train": {"a": 6, "b": 6}, "val": {"a": 2, "b": 2}, "test": {"a": 2, "b": 2}})
    leak = folder / "test" / "b" / "leak.jpg"
    shutil.copy(folder / "train" / "b" / "0.jpg", leak)
    near = folder / "val" / "a" / "near.png"
    from PIL import Image

    Image.open(folder / "train" / "a" / "1.jpg").save(near)  # the same picture, other bytes

    prepare_dataset(_params(folder), "toy")

    manifest = _manifest(in_tmp).set_index("path")
    report = json.loads((in_tmp / "data/prepared/toy/report.json").read_text())
    assert manifest.loc[str(leak), "split"] == "test"  # one copy kept, the other dropped as a duplicate
    assert {d["reason"] for d in report["dropped"] if d["path"] == str(folder / "train/b/0.jpg")} == {
        "duplicate"
    }
    assert (
        manifest.loc[str(near), "split"] == "val"
        and manifest.loc[str(folder / "train/a/1.jpg"), "split"] == "train"
    )
    crossing = [g for g in report["near_duplicates"]["groups"] if len(g["splits"]) > 1]
    assert crossing and report["near_duplicates"]["across_owner_splits"] == len(crossing)
    assert any(str(near) in g["members"] for g in crossing)


def test_a_split_folder_without_train_is_refused(in_tmp):
    folder = in_tmp / "photos"
    _split_folder(folder, {"val": {"a": 3, "b": 3}, "test": {"a": 3, "b": 3}})
    with pytest.raises(VisionlabError, match=r"is split \(test, val\) but has no train/ folder"):
        prepare_dataset(_params(folder), "toy")
