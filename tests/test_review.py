import numpy as np
import pandas as pd
import yaml
from click.testing import CliRunner
from PIL import Image, ImageDraw

from tests.conftest import minimal_params
from visionlab.cli import main
from visionlab.data.manifest import read_manifest
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.evaluation.review import _wrap, exclusion_key
from visionlab.params import parse_params


def _tile(path, rgb, seed):
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb) + rng.normal(0, 12, (48, 48, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_review_puts_the_odd_image_first_and_its_entry_pastes_into_the_exclusion_list(in_tmp):
    root = in_tmp / "data/raw/toy/toy"
    for i in range(8):
        _tile(root / f"red/{i}.png", (220, 30, 30), i)
        _tile(root / f"sky/{i}.png", (40, 90, 230), 100 + i)
    stripes = np.zeros((48, 48, 3), np.uint8)
    stripes[::4] = 255  # black-and-white stripes filed under "red"
    odd = "a_very_long_file_name_that_no_thumbnail_caption_holds_on_one_line_odd.png"
    Image.fromarray(stripes).save(root / f"red/{odd}")
    params = minimal_params(prepare={"workers": 1})
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params))
    prepare_dataset(parse_params(params), "toy")
    result = CliRunner().invoke(
        main, ["data", "review", "--dataset", "toy", "--count", "6", "--image-size", "64"]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(in_tmp / "reports/review/toy-review.csv")
    assert list(table.columns[:2]) == ["exclusion", "path"]
    assert table.exclusion[0] == f"red/{odd}"
    assert set(table.exclusion[1:]) == {f"{c}/{i}.png" for c in ("red", "sky") for i in range(8)}
    sheet = Image.open(in_tmp / "reports/review/toy-review.png")
    assert sheet.size[0] == 6 * 160 and sheet.size[1] > 160 + 34  # the long name got extra lines

    # The CSV entry, pasted as is, is what prepare excludes.
    (in_tmp / "exclusions.txt").write_text(f"{table.exclusion[0]}  # stripes, not a red tile\n")
    params["datasets"]["toy"]["exclusions"] = "exclusions.txt"
    prepare_dataset(parse_params(params), "toy")
    manifest, _ = read_manifest(in_tmp / "data/prepared/toy")
    assert len(manifest) == 16 and not manifest.path.str.endswith(odd).any()


def test_captions_wrap_whole_names_within_the_thumbnail():
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    name = "dandelion/" + "x" * 90 + ".jpg"
    lines = _wrap(draw, name, 154)
    assert len(lines) > 1 and "".join(lines) == name
    assert all(draw.textlength(line) <= 154 for line in lines)
    assert _wrap(draw, "roses/1.jpg", 154) == ["roses/1.jpg"]


def test_exclusion_key_is_relative_to_the_image_root():
    from pathlib import Path

    root = Path("data/raw/flowers/flower_photos")
    assert exclusion_key("data/raw/flowers/flower_photos/roses/1.jpg", "roses", root) == "roses/1.jpg"
    assert exclusion_key("elsewhere/deep/roses/2.jpg", "roses", root) == "roses/2.jpg"


def test_review_without_prepared_data_says_what_to_run(in_tmp):
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(minimal_params()))
    result = CliRunner().invoke(main, ["data", "review", "--dataset", "toy"])
    assert result.exit_code == 1
    assert "run the stage that writes data/prepared/toy first" in result.output


def test_review_of_an_unknown_data_set_names_the_known_ones(in_tmp):
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(minimal_params()))
    result = CliRunner().invoke(main, ["data", "review", "--dataset", "nope"])
    assert result.exit_code == 1
    assert "datasets.nope: no such data set (known: toy)" in result.output
