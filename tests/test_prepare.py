import json

import pandas as pd
import pytest

from tests.conftest import image_bytes, minimal_params, write_image
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.errors import VisionlabError
from visionlab.params import parse_params


@pytest.fixture
def toy(in_tmp):
    """A raw data set with every kind of bad file the real archives hold."""
    root = in_tmp / "data/raw/toy/toy"
    for label, seed0 in (("cat", 0), ("dog", 100)):
        for i in range(12):
            write_image(root / label / f"{i}.jpg", seed=seed0 + i)
    (root / "LICENSE.txt").write_text("CC-BY 2.0\n")
    (root / "cat/empty.jpg").write_bytes(b"")
    good = image_bytes(size=(200, 160), seed=7)
    (root / "dog/truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "cat/Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 200)
    (root / "cat/png-named.jpg").write_bytes(image_bytes(fmt="PNG", seed=300))
    (root / "dog/cmyk.jpg").write_bytes(image_bytes(mode="CMYK", seed=301))
    (root / "dog/grey.jpg").write_bytes(image_bytes(mode="L", seed=302))
    (root / "cat/copy-of-0.jpg").write_bytes((root / "cat/0.jpg").read_bytes())
    shared = image_bytes(seed=500)
    (root / "cat/both.jpg").write_bytes(shared)
    (root / "dog/both.jpg").write_bytes(shared)
    (root / "dog/person.jpg").write_bytes(image_bytes(seed=501))
    exclusions = in_tmp / "exclusions.txt"
    exclusions.write_text("# format test\ndog/person.jpg  # a person, not a dog\ncat/gone.jpg\n")
    return in_tmp


def _params(**prepare):
    raw = minimal_params(prepare={"workers": 1, **prepare})
    raw["datasets"]["toy"]["exclusions"] = "exclusions.txt"
    return parse_params(raw)


def test_cleaning_report_and_manifest(toy):
    out = prepare_dataset(_params(), "toy")
    manifest = pd.read_csv(out / "manifest.csv")
    report = json.loads((out / "report.json").read_text())
    reasons = {d["path"].rsplit("/toy/", 1)[-1]: d["reason"] for d in report["dropped"]}
    assert reasons == {
        "LICENSE.txt": "not_an_image",
        "cat/empty.jpg": "empty",
        "dog/truncated.jpg": "truncated",
        "cat/Thumbs.db": "not_an_image",
        "cat/copy-of-0.jpg": "duplicate",
        "cat/both.jpg": "duplicate_across_classes",
        "dog/both.jpg": "duplicate_across_classes",
        "dog/person.jpg": "excluded_by_list",
    }
    assert report["dropped_by_reason"]["duplicate_across_classes"] == 2
    assert report["exclusions_not_found"] == ["cat/gone.jpg"]
    assert report["before"] == {"cat": 17, "dog": 17}
    assert report["after"] == {"cat": 13, "dog": 14}  # png-named (cat), cmyk and grey (dog) kept
    assert report["converted_to_rgb"] == {"CMYK": 1, "L": 1}
    assert list(manifest.columns) == ["path", "label", "split", "sha256"]
    assert len(manifest) == 27 and manifest.sha256.is_unique
    assert json.loads((out / "classes.json").read_text()) == ["cat", "dog"]
    assert report["split_totals"] == manifest.split.value_counts().reindex(["train", "val", "test"]).to_dict()
    markdown = (out / "report.md").read_text()
    assert "| excluded_by_list | 1 |" in markdown and "dog/truncated.jpg" in markdown


def test_split_is_seeded_and_limit_applies(toy):
    first = pd.read_csv(prepare_dataset(_params(seed=3), "toy") / "manifest.csv")
    second = pd.read_csv(prepare_dataset(_params(seed=3), "toy") / "manifest.csv")
    pd.testing.assert_frame_equal(first, second)
    limited = pd.read_csv(prepare_dataset(_params(max_per_class=5), "toy") / "manifest.csv")
    assert limited.label.value_counts().to_dict() == {"cat": 5, "dog": 5}


def test_card_split_overrides_the_default(toy):
    raw = minimal_params(prepare={"workers": 1})
    raw["datasets"]["toy"]["split"] = {"train": 0.5, "val": 0.25, "test": 0.25}
    manifest = pd.read_csv(prepare_dataset(parse_params(raw), "toy") / "manifest.csv")
    # 15 dogs here (no exclusion list): 4 + 4 held out at a quarter each, 7 to train.
    assert manifest[manifest.label == "dog"].split.value_counts().to_dict() == {
        "train": 7,
        "val": 4,
        "test": 4,
    }


def test_unknown_class_is_named(toy):
    raw = minimal_params()
    raw["datasets"]["toy"]["classes"] = ["cat", "horse"]
    with pytest.raises(VisionlabError, match="datasets.toy.classes: horse not found"):
        prepare_dataset(parse_params(raw), "toy")


def test_missing_raw_data_says_which_stage(in_tmp):
    with pytest.raises(VisionlabError, match="run the download stage"):
        prepare_dataset(_params(), "toy")
