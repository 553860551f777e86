"""Evaluate's degraded test copies and test-time augmentation, on tiny generated images."""

import pytest
import torch
from PIL import Image

from tests.conftest import minimal_params, write_image
from visionlab.errors import ParamsError
from visionlab.evaluation.robustness import DegradedImages, degradation, hflip_tta
from visionlab.params import parse_params
from visionlab.runtime.loaders import ImageDataset


def test_degradation_names_are_validated_with_the_key():
    params = parse_params(minimal_params(evaluate={"robustness": ["downscale_128", "jpeg_30", "blur_2"]}))
    assert params.evaluate.robustness == ["downscale_128", "jpeg_30", "blur_2"]
    for bad in ("downscale", "jpeg_101", "noise_3", "blur_0"):
        with pytest.raises(ParamsError, match="evaluate.robustness"):
            parse_params(minimal_params(evaluate={"robustness": [bad]}))
    with pytest.raises(ParamsError, match="evaluate.tta"):
        parse_params(minimal_params(evaluate={"tta": ["vflip"]}))


def test_degraded_images_lose_detail_at_full_size_then_take_the_input_size(tmp_path):
    path = tmp_path / "a.jpg"
    write_image(path, seed=3, size=(96, 64))
    clean = ImageDataset([str(path)], [0], 48, (0.5,) * 3, (0.5,) * 3)
    clean.preload()
    small = degradation("downscale_16")(Image.open(path).convert("RGB"))
    assert min(small.size) == 16 and small.size == (24, 16)  # short side, aspect kept
    assert degradation("downscale_500")(small) is small  # never upscaled by the degradation
    for name in ("downscale_16", "jpeg_5", "blur_3"):
        degraded = DegradedImages(clean, degradation(name))
        assert degraded.pixels is None and clean.pixels is not None  # the clean copies stay clean
        image = degraded[0][0]
        assert image.shape == clean[0][0].shape == (3, 48, 48)
        assert not torch.allclose(image, clean[0][0], atol=0.02), name


def test_hflip_tta_averages_the_probabilities_of_an_image_and_its_mirror():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3)).eval()
    x = torch.randn(2, 3, 4, 4)
    expected = (torch.softmax(model(x), 1) + torch.softmax(model(x.flip(3)), 1)) / 2
    with torch.no_grad():
        assert torch.allclose(hflip_tta(model)(x).exp(), expected, atol=1e-6)
