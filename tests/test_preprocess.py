"""One preprocessing for every stage: train, evaluate, explain and predict give the network the
same tensor for the same file, bit for bit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from visionlab.explanations.predict import _Files, _Preprocess
from visionlab.runtime.loaders import image_dataset
from visionlab.runtime.preprocess import is_grey, load_pixels, to_tensor


@dataclass
class Net:
    """What preprocessing reads of a classifier."""

    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


RGB_NET = Net(3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
GREY_NET = Net(1, (0.5,), (0.25,))


@pytest.fixture
def photos(tmp_path: Path) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for i, (size, mode, suffix) in enumerate(
        [((61, 40), "RGB", ".jpg"), ((30, 90), "L", ".png"), ((50, 50), "RGBA", ".png")]
    ):
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8).squeeze()
        path = tmp_path / f"photo{i}{suffix}"
        Image.fromarray(pixels, mode).save(path)
        rows.append({"path": str(path), "label": ["a", "b"][i % 2]})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("net", "grayscale"), [(RGB_NET, False), (RGB_NET, True), (GREY_NET, False)])
def test_every_stage_gives_the_network_the_same_tensor(photos, net, grayscale):
    size = 32
    training = image_dataset(photos, ["a", "b"], size, net, grayscale)
    preloaded = image_dataset(photos, ["a", "b"], size, net, grayscale)
    preloaded.preload(threads=1)
    grey = is_grey(net, grayscale)
    predict = _Files([Path(p) for p in photos.path], _Preprocess(size, grey, *vars(net).values()), True)
    for index, path in enumerate(photos.path):
        explained = to_tensor(load_pixels(Path(path), size, grey), net)  # explanations' route
        assert explained.shape == (net.in_channels, size, size)
        assert torch.equal(training[index][0], explained)
        assert torch.equal(preloaded[index][0], explained)
        _, predicted, pixels, error, _ = predict[index]
        assert error is None
        assert torch.equal(predicted, explained)
        assert np.array_equal(pixels, load_pixels(Path(path), size, grey))


def test_a_grey_data_set_repeats_one_channel_for_an_rgb_network(photos):
    tensor = image_dataset(photos, ["a", "b"], 16, RGB_NET, grayscale=True)[0][0]
    scaled = tensor * torch.tensor(RGB_NET.std).view(3, 1, 1) + torch.tensor(RGB_NET.mean).view(3, 1, 1)
    assert torch.allclose(scaled[0], scaled[1], atol=1e-6) and torch.allclose(scaled[1], scaled[2], atol=1e-6)
