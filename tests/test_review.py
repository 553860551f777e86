import numpy as np
from click.testing import CliRunner
from PIL import Image

from tests.conftest import minimal_params
from visionlab.cli import main
from visionlab.data.prepare import prepare_dataset
from visionlab.params import parse_params


def _tile(path, rgb, seed):
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb) + rng.normal(0, 12, (48, 48, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_review_puts_the_odd_image_first(in_tmp):
    root = in_tmp / "data/raw/toy/toy"
    for i in range(8):
        _tile(root / f"red/{i}.png", (220, 30, 30), i)
        _tile(root / f"sky/{i}.png", (40, 90, 230), 100 + i)
    stripes = np.zeros((48, 48, 3), np.uint8)
    stripes[::4] = 255  # black-and-white stripes filed under "red"
    Image.fromarray(stripes).save(root / "red/odd.png")
    prepare_dataset(parse_params(minimal_params(prepare={"workers": 1})), "toy")
    result = CliRunner().invoke(
        main, ["data", "review", "--dataset", "toy", "--count", "6", "--image-size", "64"]
    )
    assert result.exit_code == 0, result.output
    table = (in_tmp / "reports/review/toy-review.csv").read_text().splitlines()
    assert table[1].split(",")[0].endswith("red/odd.png")
    sheet = Image.open(in_tmp / "reports/review/toy-review.png")
    assert sheet.size == (6 * 160, 1 * (160 + 34))


def test_review_without_prepared_data_says_what_to_run(in_tmp):
    result = CliRunner().invoke(main, ["data", "review", "--dataset", "toy"])
    assert result.exit_code == 1
    assert "run the stage that writes data/prepared/toy first" in result.output
