"""`visionlab data inspect`: what a folder of photos holds, judged as the prepare stage judges it."""

from __future__ import annotations

import shutil

from click.testing import CliRunner

from tests.conftest import photo_folder, write_image
from visionlab.cli import main


def test_a_class_folder_is_counted_and_its_problems_named(tmp_path):
    root = tmp_path / "my_photos"
    photo_folder(root, {"cats": 12, "dogs": 11, "owls": 3})
    (root / "dogs" / "broken.jpg").write_bytes((root / "dogs" / "0.jpg").read_bytes()[:300])
    (root / "dogs" / "notes.txt").write_text("not a photo")
    shutil.copy(root / "cats" / "0.jpg", root / "dogs" / "same-as-a-cat.jpg")
    write_image(root / "cats" / "wide.png", seed=7, size=(300, 100), fmt="PNG")
    (root / "README.jpg").write_bytes((root / "cats" / "1.jpg").read_bytes())

    result = CliRunner().invoke(main, ["data", "inspect", str(root), "--workers", "1"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{root}: 28 usable images in 3 classes (class folders)"
    assert "  cats  13" in lines and "  dogs  12" in lines and "  owls  3" in lines
    assert "formats: JPEG 27, PNG 1" in result.stdout
    assert "suggested image_size: 64" in result.stdout  # 90 px short sides: below 224
    assert (
        "unusable: 2 (" in result.stdout
        and "dogs/broken.jpg: undecodable (Truncated File Read)" in result.stdout
    )
    assert "dogs/notes.txt: not_an_image" in result.stdout
    assert "outside a class folder (ignored): 1, e.g. README.jpg" in result.stdout
    assert "exact duplicates: 1 group (1 extra copy; 1 across classes)" in result.stdout
    assert "  cats/0.jpg = dogs/same-as-a-cat.jpg" in lines
    assert "too small to split 0.7/0.2/0.1: owls (3)" in result.stdout


def test_an_already_split_folder_keeps_the_owners_split_and_flags_copies_across_it(tmp_path):
    root = tmp_path / "split_photos"
    photo_folder(root / "train", {"a": 4, "b": 4})
    photo_folder(root / "validation", {"a": 2, "b": 1}, first_seed=100)
    write_image(root / "test" / "a" / "x.jpg", seed=500, size=(300, 260))
    (root / "test" / "b").mkdir(parents=True)
    shutil.copy(root / "train" / "b" / "0.jpg", root / "test" / "b" / "leak.jpg")

    result = CliRunner().invoke(main, ["data", "inspect", str(root), "--workers", "1"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith(
        "13 usable images in 2 classes (already split (train, val, test): the owner's split is kept)"
    )
    assert "  a  train 4  val 2  test 1" in lines and "  b  train 4  val 1  test 1" in lines
    assert "1 across classes or splits" in result.stdout
    assert "  test/b/leak.jpg = train/b/0.jpg" in lines
    assert "too small" not in result.stdout  # the owner chose the split


def test_a_folder_without_classes_is_one_clear_line(tmp_path):
    (tmp_path / "flat").mkdir()
    write_image(tmp_path / "flat" / "a.jpg")
    result = CliRunner().invoke(main, ["data", "inspect", str(tmp_path / "flat")])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"error: {tmp_path / 'flat'}: no class folders with files")
    missing = CliRunner().invoke(main, ["data", "inspect", str(tmp_path / "gone")])
    assert missing.exit_code == 1 and "gone: no such folder" in missing.stderr
