import numpy as np
import pytest
from PIL import Image

from tests.conftest import image_bytes, write_image
from visionlab.data.images import EMPTY, NOT_AN_IMAGE, TRUNCATED, UNDECODABLE, check_image, load_rgb


def test_good_jpeg(tmp_path):
    verdict = check_image(write_image(tmp_path / "a.jpg"))
    assert verdict.reason is None and verdict.format == "JPEG" and (verdict.width, verdict.height) == (48, 40)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", EMPTY),
        (b"This archive is licensed under CC-BY.\n", NOT_AN_IMAGE),
        (b"\x00\x01" * 300, NOT_AN_IMAGE),
    ],
)
def test_bad_files(tmp_path, content, reason):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    assert check_image(path).reason == reason


def test_truncated_jpeg(tmp_path):
    data = image_bytes(size=(200, 150))
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    assert check_image(path).reason == TRUNCATED


def test_corrupt_body_is_undecodable_or_truncated(tmp_path):
    data = bytearray(image_bytes(fmt="PNG", size=(64, 64)))
    data[60:200] = b"\xff" * 140  # clobber the IDAT stream, keep the header
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    assert check_image(path).reason in (UNDECODABLE, TRUNCATED)


def test_png_under_jpg_name_is_usable(tmp_path):
    path = tmp_path / "200.jpg"
    path.write_bytes(image_bytes(fmt="PNG"))
    verdict = check_image(path)
    assert verdict.reason is None and verdict.format == "PNG"


@pytest.mark.parametrize(
    ("mode", "fmt"), [("L", "JPEG"), ("P", "PNG"), ("CMYK", "JPEG"), ("RGBA", "PNG"), ("LA", "PNG")]
)
def test_every_mode_loads_as_rgb(tmp_path, mode, fmt):
    path = tmp_path / f"img.{fmt.lower()}"
    path.write_bytes(image_bytes(mode=mode, fmt=fmt))
    assert check_image(path).mode == mode
    image = load_rgb(path, size=32)
    assert image.mode == "RGB" and image.size == (32, 32)


def test_transparency_becomes_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (10, 200, 30, 0)).save(path)
    assert np.asarray(load_rgb(path)).min() == 255
