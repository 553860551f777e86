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


def _photo(path, width, height):
    """A photo-like JPEG: smooth colour fields with some detail, the kind a camera writes."""
    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 255, (height // 40, width // 40, 3), dtype=np.uint8))
    detail = rng.normal(0, 6, (height, width, 3))
    pixels = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=float) + detail
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def _full_decode(path, size):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=float)


def test_a_large_jpeg_decodes_at_a_reduced_scale_to_nearly_the_same_pixels(tmp_path, monkeypatch):
    path = _photo(tmp_path / "camera.jpg", 2400, 1800)
    from PIL import JpegImagePlugin

    drafts = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        found = original(self, mode, size)
        drafts.append(self.size)  # the size it will decode at
        return found

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    pixels = np.asarray(load_rgb(path, 224), dtype=float)
    assert drafts == [(600, 450)]  # 1/4 scale: still at least twice the input side
    difference = np.abs(pixels - _full_decode(path, 224))
    assert difference.mean() < 1.0 and difference.max() <= 8  # measured: 0.33 and 3 levels of 255


@pytest.mark.parametrize("side", [224, 299])
def test_files_under_twice_the_input_side_decode_exactly_as_before(tmp_path, side):
    # TF flowers' largest photos are 500 px wide: at 224 px and at augment's 299 px nothing changes.
    path = _photo(tmp_path / "flower.jpg", 500, 375)
    assert np.array_equal(np.asarray(load_rgb(path, side), dtype=float), _full_decode(path, side))
