"""The third layout: a CSV of path,label rows (optionally split) naming each photo's class."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from tests.conftest import minimal_params, write_image
from visionlab.cli import main
from visionlab.data.layouts import list_images
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.errors import VisionlabError
from visionlab.params import parse_params


def _flat(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    """Photos in one flat folder (no class folders) and labels.csv naming their class and split."""
    lines = ["path,label,split"]
    for n, (name, label, split) in enumerate(rows):
        write_image(folder / name, seed=n, size=(40, 32))
        lines.append(f"{name},{label},{split}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder


def _rows(per_class: int, splits: tuple[str, ...] = ("",)) -> list[tuple[str, str, str]]:
    return [
        (f"img/{label}_{split or 'x'}_{n}.jpg", label, split)
        for label in ("ant", "bee")
        for split in splits
        for n in range(per_class)
    ]


def _params(folder: Path, labels: str = "labels.csv"):
    raw = minimal_params(prepare={"workers": 1})
    raw["datasets"]["toy"] = {"source": {"folder": str(folder)}, "labels": labels}
    raw["folders"] = {"toy": str(folder)}
    return parse_params(raw)


def test_a_csv_with_a_split_column_keeps_each_row_in_its_split(in_tmp):
    folder = _flat(in_tmp / "shots", _rows(6, ("train", "val", "test")))
    write_image(folder / "img" / "stray.jpg", seed=900)  # in the folder, in no row

    prepare_dataset(_params(folder), "toy")

    manifest = pd.read_csv(in_tmp / "data/prepared/toy/manifest.csv")
    assert len(manifest) == 36
    for row in manifest.itertuples():
        name = Path(row.path).name
        assert row.label == name.split("_")[0] and row.split == name.split("_")[1], row.path
    report = json.loads((in_tmp / "data/prepared/toy/report.json").read_text())
    assert report["left_out_by_choice"] == {"(files labels.csv does not list)": 1}


def test_a_csv_without_splits_is_split_by_the_fractions(in_tmp):
    folder = _flat(in_tmp / "shots", _rows(10))
    prepare_dataset(_params(folder), "toy")
    manifest = pd.read_csv(in_tmp / "data/prepared/toy/manifest.csv")
    assert manifest.groupby("split").size().to_dict() == {"test": 2, "train": 14, "val": 4}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            "file,class\na.jpg,ant\n",
            "the first row must name the columns path,label (and optionally split); it names file, class",
        ),
        ("path,label\n../outside.jpg,ant\n", "row 2: ../outside.jpg is outside the CSV's folder"),
        ("path,label\ngone.jpg,ant\nalso-gone.jpg,bee\n", "2 listed files not found (paths are relative to"),
        ("path,label\na.jpg,\n", "row 2 has an empty path or label"),
        (
            "path,label,split\na.jpg,ant,holdout\n",
            "row 2: split 'holdout' is not train, val, validation or test",
        ),
        ("path,label\na.jpg,ant\n./a.jpg,bee\n", "row 3: ./a.jpg is listed twice"),
    ],
)
def test_a_bad_csv_is_refused_with_its_row(tmp_path, table, message):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "labels.csv").write_text(table)
    with pytest.raises(VisionlabError) as caught:
        list_images(tmp_path, "labels.csv")
    assert message in str(caught.value) and str(tmp_path / "labels.csv") in str(caught.value)


def test_data_add_takes_a_csv_and_writes_its_labels_key(tmp_path):
    import shutil

    repo = Path(__file__).resolve().parents[1]
    params_file = tmp_path / "params.yaml"
    shutil.copy(repo / "params.yaml", params_file)
    folder = _flat(tmp_path / "shots", _rows(10))

    result = CliRunner().invoke(
        main,
        ["data", "add", "bugs", str(folder / "labels.csv"), "--params", str(params_file), "--workers", "1"],
    )

    assert result.exit_code == 0, result.output
    assert "20 usable images in 2 classes (labels from labels.csv)" in result.stdout
    from visionlab.params import load_params

    card = load_params(params_file).dataset("bugs")
    assert (
        card.labels == "labels.csv" and card.source.folder == str(folder) and card.classes == ["ant", "bee"]
    )
