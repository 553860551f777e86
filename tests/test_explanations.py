"""Explanations with teeth: a tiny CNN trained on images whose class is where a bright patch sits.

The trained net must look at the patch (Grad-CAM, Grad-CAM++), its top patches must contain it,
and every number shown must be reproducible; guided backprop must follow the guided rule for each
way a model can call a rectifier.
"""

from __future__ import annotations

import base64
import io
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from mlflow.tracking import MlflowClient
from PIL import Image
from torch import nn

from visionlab.errors import VisionlabError
from visionlab.explanations import explain_stage, model_views
from visionlab.explanations.feature_maps import MIN_TILE, conv_layers, layer_grids
from visionlab.explanations.filters import first_conv, model_filters
from visionlab.explanations.gradcam import class_maps
from visionlab.explanations.grids import coloured, to_unit, upscale
from visionlab.explanations.guided import (
    gradient_image,
    guided_backprop,
    guided_grad_cam,
    guided_rectifiers,
)
from visionlab.explanations.patches import Target, crop, parse_unit, receptive_field, rescore, top_patches
from visionlab.explanations.predict import format_result, predict_paths
from visionlab.models import Checkpoint, Classifier, build_model, save_checkpoint
from visionlab.params import ModelParams, parse_params
from visionlab.runtime.preprocess import to_tensor
from visionlab.tracking import start_run

from .conftest import minimal_params, write_image

SIZE, PATCH, QUADRANT = 32, 12, 16


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These nets are tiny: a second intra-op thread only adds waiting, badly so on a busy machine
    (the study's training took 14 s with two threads beside other jobs, 1.2 s with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the synthetic study -------------------------------------------------------------------------


def input_gradient(model, image, class_index):
    """The plain gradient of the class score (no guided rule): the reference guided backprop is
    held against. Only the tests need it, so the library keeps no public function for it."""
    from visionlab.explanations.guided import _input_gradient

    return _input_gradient(model, image, class_index, guided=False)


def quadrant_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Dark noise with one bright 12x12 patch (1/7 of the image); the class is its quadrant."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, (count, SIZE, SIZE, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, count)
    boxes = []
    for i, label in enumerate(labels):
        row, column = divmod(int(label), 2)
        top = row * QUADRANT + 2 * int(rng.integers(0, (QUADRANT - PATCH) // 2 + 1))
        left = column * QUADRANT + 2 * int(rng.integers(0, (QUADRANT - PATCH) // 2 + 1))
        pixels[i, top : top + PATCH, left : left + PATCH] = rng.integers(200, 256, (PATCH, PATCH, 3))
        boxes.append((top, left))
    return pixels, labels, boxes


class QuadrantNet(Classifier):
    """3x3 conv, pool, then position channels (CoordConv) and 1x1 convs: a unit can fire on
    "bright here", so the class evidence stays on the patch; global average pooling, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.act1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(10, 16, 1)
        self.act2 = nn.ReLU()
        self.conv3 = nn.Conv2d(16, 16, 1)
        self.act3 = nn.ReLU()
        self.head = nn.Linear(16, 4)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act1(self.conv1(x)))
        ramp = torch.linspace(-1, 1, x.shape[-1], device=x.device)
        coords = torch.stack(torch.meshgrid(ramp, ramp, indexing="ij"))
        x = torch.cat([x, coords.expand(x.shape[0], -1, -1, -1)], dim=1)
        return self.act3(self.conv3(self.act2(self.conv2(x)))).mean(dim=(2, 3))

    def cam_layer(self) -> nn.Module:
        return self.act3


def batch_of(pixels: np.ndarray) -> torch.Tensor:
    return torch.stack([to_tensor(p, QuadrantNet) for p in pixels])


@pytest.fixture(scope="module")
def study():
    """The trained net and 64 held-out images: (model, pixels, labels, boxes)."""
    torch.manual_seed(0)
    pixels, labels, _ = quadrant_images(1000, seed=0)
    x, y = batch_of(pixels), torch.from_numpy(labels)
    model = QuadrantNet()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    order = torch.Generator().manual_seed(0)
    for _epoch in range(4):
        for rows in torch.randperm(len(x), generator=order).split(32):
            loss = F.cross_entropy(model(x[rows]), y[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    test_pixels, test_labels, test_boxes = quadrant_images(64, seed=1)
    return model, test_pixels, test_labels, test_boxes


def patch_mask(box: tuple[int, int], margin: int = 0) -> np.ndarray:
    top, left = box
    mask = np.zeros((SIZE, SIZE), bool)
    mask[max(top - margin, 0) : top + PATCH + margin, max(left - margin, 0) : left + PATCH + margin] = True
    return mask


def test_the_tiny_cnn_learns_where_the_patch_is(study):
    model, pixels, labels, _ = study
    with torch.no_grad():
        predicted = model(batch_of(pixels)).argmax(dim=1).numpy()
    assert (predicted == labels).mean() >= 0.95


# --- Grad-CAM and Grad-CAM++ ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["gradcam", "gradcam_pp"])
def test_heatmaps_fall_on_the_patch(study, method):
    model, pixels, labels, boxes = study
    inside, near, peaks = [], [], []
    for i in range(24):
        heat = getattr(
            class_maps(model, model.cam_layer(), to_tensor(pixels[i], model), int(labels[i])), method
        )
        assert heat.shape == (SIZE, SIZE) and np.isfinite(heat).all() and heat.max() == pytest.approx(1.0)
        inside.append(heat[patch_mask(boxes[i])].sum() / heat.sum())
        # The layer has a stride of 2 and the map is upsampled bilinearly: one cell of blur.
        near.append(heat[patch_mask(boxes[i], margin=2)].sum() / heat.sum())
        peak = np.unravel_index(heat.argmax(), heat.shape)
        peaks.append(patch_mask(boxes[i], margin=1)[peak])
    area = PATCH * PATCH / SIZE**2  # 14% of the image
    assert np.mean(inside) > 3 * area, f"mass in the patch: {np.round(inside, 2)}"
    assert np.mean(near) > 0.6, f"mass in and around the patch: {np.round(near, 2)}"
    assert np.mean(peaks) >= 0.9


def test_gradcam_of_another_class_stays_off_the_patch(study):
    model, pixels, labels, boxes = study
    own, other = [], []
    for i in range(12):
        image, mask = to_tensor(pixels[i], model), patch_mask(boxes[i])
        heat = class_maps(model, model.cam_layer(), image, int(labels[i])).gradcam
        wrong = class_maps(model, model.cam_layer(), image, int(labels[i] + 1) % 4).gradcam
        own.append(heat[mask].sum() / heat.sum())
        other.append(wrong[mask].sum() / max(wrong.sum(), 1e-9))
    assert np.mean(other) < 0.5 * np.mean(own)


class BinaryNet(Classifier):
    """The cats-and-dogs shape: one logit z, output [0, z]. z = bright evidence - dark evidence."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1 / 3] * 3, [-1 / 3] * 3]).view(2, 3, 1, 1))
            self.conv.bias.copy_(torch.tensor([-0.5, 0.5]))
        self.relu = nn.ReLU()
        self.head = nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.relu(self.conv(x)).mean(dim=(2, 3))
        z = maps[:, :1] - maps[:, 1:]
        return torch.cat([torch.zeros_like(z), z], dim=1)

    def cam_layer(self) -> nn.Module:
        return self.relu


def test_a_fixed_zero_logit_is_explained_by_the_margin():
    model = BinaryNet()
    image = torch.zeros(3, 32, 32)
    image[:, 2:10, 4:12] = 1.0
    inside = np.zeros((32, 32), bool)
    inside[2:10, 4:12] = True
    first = class_maps(model, model.relu, image, 0).gradcam  # the constant 0 logit: explained as -z
    second = class_maps(model, model.relu, image, 1).gradcam
    assert first.max() > 0 and first[~inside].sum() > 0.8 * first.sum()
    assert second[inside].sum() > 0.8 * second.sum()
    assert guided_backprop(model, image, 0).abs().sum() > 0


# --- guided backpropagation ----------------------------------------------------------------------


class ReferenceRectifier(torch.autograd.Function):
    """The guided rule written out on its own: gradient > 0, where lo < x < hi."""

    @staticmethod
    def forward(ctx, x, high):
        ctx.save_for_backward(x)
        ctx.high = high
        return x.clamp(min=0, max=high)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        open_range = (x > 0) if ctx.high is None else (x > 0) & (x < ctx.high)
        return grad.clamp(min=0) * open_range, None


class EveryRectifier(nn.Module):
    """Calls a rectifier every way a model can: modules (in place too), F and torch functions,
    tensor methods, ReLU6 and hardtanh. ``reference`` swaps them all for ReferenceRectifier."""

    KINDS = (
        "module",
        "module_inplace",
        "F.relu",
        "torch.relu_",
        "method",
        "relu6_module",
        "F.relu6",
        "hardtanh",
    )

    def __init__(self, reference: bool = False) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.convs = nn.ModuleList(
            nn.Conv2d(3 if i == 0 else 6, 6, 3, padding=1) for i in range(len(self.KINDS))
        )
        self.relu = nn.ReLU()
        self.relu_inplace = nn.ReLU(inplace=True)
        self.relu6 = nn.ReLU6(inplace=True)
        self.head = nn.Linear(6, 3)
        self.reference = reference

    def rectify(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        six = kind in ("relu6_module", "F.relu6", "hardtanh")
        if self.reference:
            return ReferenceRectifier.apply(x, 6.0 if six else None)
        x = 4 * x if six else x  # pushes some values past 6, so the upper bound matters
        if kind == "module":
            return self.relu(x)
        if kind == "module_inplace":
            return self.relu_inplace(x)
        if kind == "F.relu":
            return F.relu(x)
        if kind == "torch.relu_":
            torch.relu_(x)  # the result is used through x, as in-place code does
            return x
        if kind == "method":
            return x.relu()
        if kind == "relu6_module":
            return self.relu6(x)
        if kind == "F.relu6":
            return F.relu6(x)
        return F.hardtanh(x, 0.0, 6.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, kind in zip(self.convs, self.KINDS, strict=True):
            x = conv(x)
            if self.reference and kind in ("relu6_module", "F.relu6", "hardtanh"):
                x = 4 * x
            x = self.rectify(x, kind)
        return self.head(x.mean(dim=(2, 3)))


def test_guided_backprop_follows_the_guided_rule_for_every_rectifier():
    model, reference = EveryRectifier(), EveryRectifier(reference=True)
    reference.load_state_dict(model.state_dict())
    image = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(model(image[None]), reference(image[None]), atol=1e-5)
    with guided_rectifiers() as mode:
        model(image[None])
    assert mode.calls == len(EveryRectifier.KINDS)
    for c in range(3):
        guided = guided_backprop(model, image, c)
        assert guided.shape == image.shape and torch.isfinite(guided).all()
        # Same rule as the hand-written reference: no negative gradient leaks through a rectifier.
        assert torch.allclose(guided, input_gradient(reference, image, c), atol=1e-6)
        assert not torch.allclose(guided, input_gradient(model, image, c), atol=1e-4)


def test_guided_backprop_leaves_nothing_behind():
    model = EveryRectifier()
    image = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(2))
    before = input_gradient(model, image, 1)
    guided_backprop(model, image, 1)
    assert torch.equal(input_gradient(model, image, 1), before)
    t = torch.tensor([1.0, -1.0], requires_grad=True)
    F.relu(t).backward(torch.tensor([-1.0, -1.0]))
    assert t.grad.tolist() == [-1.0, 0.0]  # a plain ReLU again: the negative gradient passes


@pytest.mark.parametrize("arch", ["mobilenet_v2", "inception_v3"])
def test_guided_backprop_reaches_torchvision_activations(arch):
    import torchvision
    from torchvision.models.inception import BasicConv2d

    torch.manual_seed(0)
    if arch == "mobilenet_v2":
        net = torchvision.models.mobilenet_v2(weights=None, num_classes=3)
        size, rectifiers, layer = 64, sum(isinstance(m, nn.ReLU6) for m in net.modules()), net.features[-1]
    else:  # its BasicConv2d calls F.relu: no nn.ReLU module to swap
        net = torchvision.models.inception_v3(
            weights=None, aux_logits=False, init_weights=False, num_classes=3
        )
        size, rectifiers, layer = 75, sum(isinstance(m, BasicConv2d) for m in net.modules()), net.Mixed_7c
    net.eval()
    image = torch.randn(3, size, size, generator=torch.Generator().manual_seed(0))
    with guided_rectifiers() as mode, torch.no_grad():
        net(image[None])
    assert mode.calls == rectifiers > 0
    guided = guided_backprop(net, image, 1)
    assert guided.shape == image.shape and torch.isfinite(guided).all()
    plain = input_gradient(net, image, 1)
    assert guided.abs().sum() > 0 and (guided - plain).norm() > 0.1 * plain.norm()
    maps = class_maps(net, layer, image, 1)
    assert maps.gradcam.shape == (size, size) and np.isfinite(maps.gradcam_pp).all()
    both = guided_grad_cam(net, layer, image, 1)
    assert both.shape == image.shape and gradient_image(both).shape == (size, size, 3)


# --- feature maps and filters --------------------------------------------------------------------


def test_feature_map_grids_have_one_tile_per_channel(study):
    model, pixels, _, _ = study
    image = to_tensor(pixels[0], model)
    grids = layer_grids(model, image, max_channels=None)
    assert [g.layer for g in grids] == ["conv1", "conv2", "conv3"]
    assert [g.grid.count for g in grids] == [8, 16, 16] == [g.channels for g in grids]
    capped = layer_grids(model, image, ["conv2"], max_channels=5)[0]
    assert (capped.shown, capped.channels, capped.grid.count) == (5, 16, 5)
    # Tile k is channel k of the conv's output, in its own colour scale.
    out = model.conv2(torch.cat([model.pool(model.act1(model.conv1(image[None]))), _coords()], dim=1))
    channel = out[0, 3].detach().numpy()
    factor = capped.grid.tile[0] // channel.shape[0]
    assert capped.grid.tile[0] >= MIN_TILE and capped.grid.tile == (16 * factor, 16 * factor)
    assert np.array_equal(capped.grid.cell(3), upscale(coloured(to_unit(channel)), factor))
    with pytest.raises(VisionlabError, match="feature_map_layers: the model has no layer 'nope'"):
        layer_grids(model, image, ["nope"])


def _coords() -> torch.Tensor:
    ramp = torch.linspace(-1, 1, QUADRANT)
    return torch.stack(torch.meshgrid(ramp, ramp, indexing="ij"))[None]


class Branchy(Classifier):
    """Registers a conv before the one that sees the input first."""

    in_channels = 1

    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Conv2d(4, 4, 3)
        self.early = nn.Conv2d(1, 4, 5)
        self.head = nn.Linear(4, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.late(self.early(x)).mean(dim=(2, 3))

    def cam_layer(self) -> nn.Module:
        return self.late


def test_the_filter_grid_holds_every_first_layer_kernel(study):
    model = study[0]
    filters = model_filters(model, torch.zeros(3, SIZE, SIZE))
    assert filters.layer == "conv1" and filters.kernels == 8
    assert filters.colour is not None and filters.colour.count == 8
    assert filters.channels.count == 8 * 3 and filters.channels.columns == 3
    weight = model.conv1.weight.detach().numpy()
    unit = (weight - weight.min()) / (weight.max() - weight.min())
    factor = filters.colour.tile[0] // 3
    for k in range(8):
        expected = upscale((unit[k].transpose(1, 2, 0) * 255).round().astype(np.uint8), factor)
        assert np.array_equal(filters.colour.cell(k), expected)
        assert np.array_equal(filters.channels.cell(3 * k + 2), expected[..., 2])
    grey = Branchy()
    assert first_conv(grey)[0] == "late"  # registration order alone is wrong here
    grey_filters = model_filters(grey, torch.zeros(1, 16, 16))
    assert grey_filters.layer == "early" and grey_filters.colour is None and grey_filters.channels.count == 4


# --- maximally activating patches ----------------------------------------------------------------


def test_top_patches_contain_the_bright_patch_and_their_scores_recompute(study):
    model, pixels, labels, boxes = study
    geometry = receptive_field(model, "act3", 3, SIZE)
    assert geometry.stride == (2.0, 2.0) and 4 <= geometry.side <= 8  # 3x3 conv, 2x2 pool, 1x1 convs
    targets = [Target(str(c), "act3", class_index=c) for c in range(4)] + [parse_unit("conv3:5", model)]
    found = top_patches(model, lambda i: to_tensor(pixels[i], model), len(pixels), targets, 4, SIZE)
    for target in targets:
        patches = found[target.name]
        assert len(patches) == 4
        scores = [p.score for p in patches]
        assert scores == sorted(scores, reverse=True)
        for patch in patches:
            # The score shown is the model on the patch alone, pasted at its place.
            piece = to_tensor(crop(pixels[patch.image_index], patch.box), model)
            again = rescore(model, piece, patch.box, SIZE, target, patch.position)
            assert again == pytest.approx(patch.score, rel=1e-4, abs=1e-4)
            if target.class_index is not None:
                # A class is driven by (part of) a bright patch in its own quadrant.
                assert labels[patch.image_index] == target.class_index
                top, left, side = patch.box
                assert divmod(target.class_index, 2) == (
                    (top + side // 2) // QUADRANT,
                    (left + side // 2) // QUADRANT,
                )
                bright = patch_mask(boxes[patch.image_index])[top : top + side, left : left + side]
                assert bright.mean() >= 0.25  # a corner of it at least: 5x5 windows, 12x12 patches


def test_a_bad_unit_is_named():
    model = QuadrantNet()
    with pytest.raises(VisionlabError, match="patch_units: the model has no layer 'conv9'"):
        parse_unit("conv9:1", model)
    with pytest.raises(VisionlabError, match="is not 'layer:channel'"):
        parse_unit("conv3", model)


# --- predict -------------------------------------------------------------------------------------


def toy_checkpoint(path: Path, classes: list[str], size: int = 64) -> Path:
    torch.manual_seed(0)
    spec = ModelParams(arch="handmade_cnn", weights="none", base="trainable", augmented=False)
    model = build_model(spec, len(classes))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model, spec, classes, size)
    return path


def test_predict_classifies_good_files_and_names_bad_ones(tmp_path):
    checkpoint = toy_checkpoint(tmp_path / "model.pt", ["daisy", "roses", "tulips"])
    folder = tmp_path / "inbox"
    write_image(folder / "one.png", seed=1, fmt="PNG")
    write_image(folder / "deeper" / "two.jpg", seed=2)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    missing = tmp_path / "gone.jpg"
    cams = tmp_path / "cams"

    results = predict_paths(checkpoint, [folder, missing], top_k=3, cam_dir=cams)

    # A folder's files in path order (deeper/two.jpg sorts before one.png), then the next input.
    assert [r.path.name for r in results] == ["broken.jpg", "two.jpg", "one.png", "gone.jpg"]
    good = [r for r in results if r.ok]
    assert len(good) == 2
    for result in good:
        probabilities = [p for _, p in result.top]
        assert len(result.top) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) <= 1 + 1e-6 and {n for n, _ in result.top} == {"daisy", "roses", "tulips"}
        assert result.cam is not None and result.cam.parent == cams and result.cam.is_file()
        assert Image.open(result.cam).size == (64, 64)
        assert format_result(result).startswith(f"{result.path}: ")
    broken, gone = results[0], results[3]
    assert "broken.jpg" in broken.error and "\n" not in broken.error and broken.cam is None
    assert gone.error == f"{missing}: no such file"
    assert format_result(broken).startswith("error: ") and "broken.jpg" in format_result(broken)
    assert len(predict_paths(checkpoint, [folder / "one.png"], top_k=10)[0].top) == 3


def test_predict_writes_overlays_beside_the_images_and_never_classifies_them(tmp_path):
    checkpoint = toy_checkpoint(tmp_path / "model.pt", ["daisy", "roses"])
    folder = tmp_path / "inbox"
    write_image(folder / "one.png", seed=1, fmt="PNG")
    write_image(folder / "deeper" / "two.jpg", seed=2)

    first = predict_paths(checkpoint, [folder], cam_beside=True, layer="blocks.2.0")
    again = predict_paths(checkpoint, [folder], cam_beside=True)

    assert [r.cam for r in first] == [folder / "deeper" / "two-gradcam.png", folder / "one-gradcam.png"]
    assert all(r.cam.is_file() and r.cam_error is None for r in first)
    assert [r.path for r in again] == [r.path for r in first]  # the overlays are not inputs
    assert [r.top for r in again] == [r.top for r in first]
    with pytest.raises(VisionlabError, match="--layer: the model has no layer 'no_such_layer'"):
        predict_paths(checkpoint, [folder], cam_beside=True, layer="no_such_layer")


def test_an_overlay_that_cannot_be_written_fails_that_image_only(tmp_path):
    checkpoint = toy_checkpoint(tmp_path / "model.pt", ["daisy", "roses"])
    write_image(tmp_path / "in" / "one.png", seed=1, fmt="PNG")
    write_image(tmp_path / "in" / "two.png", seed=2, fmt="PNG")
    (tmp_path / "cams").mkdir()
    (tmp_path / "cams" / "one-gradcam.png").mkdir()  # a folder where the overlay should go

    one, two = predict_paths(checkpoint, [tmp_path / "in"], cam_dir=tmp_path / "cams")

    assert one.ok and one.top and one.cam is None and "one-gradcam.png" in one.cam_error
    assert "no cam:" in format_result(one) and "\n" not in format_result(one)
    assert two.cam == tmp_path / "cams" / "two-gradcam.png" and two.cam.is_file()


# --- the stage -----------------------------------------------------------------------------------


def _logged_files(client, run_id: str, folder: str) -> set[str]:
    """Every artifact file of the run under ``folder``, relative to it."""
    found, pending = set(), [folder]
    while pending:
        for item in client.list_artifacts(run_id, pending.pop()):
            if item.is_dir:
                pending.append(item.path)
            else:
                found.add(item.path.removeprefix(f"{folder}/"))
    return found


def test_the_explain_stage_writes_every_explanation_and_a_gallery(in_tmp, monkeypatch):
    classes = ["daisy", "roses", "tulips"]
    checkpoint = toy_checkpoint(in_tmp / "data/models/toy-cnn/model.pt", classes)
    rows = []
    for n, (label, predicted) in enumerate(
        [
            ("daisy", "daisy"),
            ("daisy", "roses"),
            ("roses", "roses"),
            ("tulips", "tulips"),
            ("tulips", "daisy"),
        ]
    ):
        path = write_image(in_tmp / f"data/prepared/toy/{label}/{n}.png", seed=n, size=(80, 70), fmt="PNG")
        rows.append(
            {
                "path": str(path.relative_to(in_tmp)),
                "label": label,
                "predicted": predicted,
                "confidence": 0.5 + n / 20,
                "correct": label == predicted,
                **{f"p_{c}": 1 / 3 for c in classes},
            }
        )
    (in_tmp / "data/eval/toy-cnn").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(in_tmp / "data/eval/toy-cnn/predictions.csv", index=False)
    explain = {
        "images_per_class": 1,
        "gradcam_class": "tulips",
        "feature_map_max_channels": 8,
        "patches_top_k": 2,
        "patch_units": ["blocks.1.0:3"],
    }
    params = parse_params(minimal_params(explain=explain))
    # The run the train stage would have started and recorded, in a real store in the test's folder.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    trained = start_run("toy", "toy-cnn")
    trained.record(in_tmp / "data/models/toy-cnn/mlflow_run.json")
    trained.finish(True)

    out = explain_stage.explain_experiment(params, "toy-cnn")

    assert out == Path("data/explain/toy-cnn")
    client = MlflowClient(tracking_uri=f"sqlite:///{in_tmp / 'mlflow.db'}")
    (logged,) = client.search_runs([trained.experiment_id])  # reopened, not a second run
    assert logged.info.run_id == trained.run_id and logged.info.status == "FINISHED"
    assert logged.data.tags["visionlab.gradcam_layer"] == "blocks.3.2"
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"index.html", "index.json"} <= on_disk
    assert _logged_files(client, trained.run_id, "explanations") == on_disk
    index = json.loads((out / "index.json").read_text())
    assert index["method"] == "gradcam" and index["layer"] == "blocks.3.2" and index["arch"] == "handmade_cnn"
    assert len(index["images"]) == 5  # every (class, verdict) group once
    for record in index["images"]:
        assert (out / record["overlay"]).is_file() and (out / record["image"]).is_file()
        explained = [e["class"] for e in record["explanations"]]
        assert explained[0] == record["predicted"] and "tulips" in explained
        assert (record["label"] in explained) and len(set(explained)) == len(explained)
    wrong = next(r for r in index["images"] if r["label"] == "daisy" and not r["correct"])
    by_overlay = {r["overlay"]: r for r in index["images"]}
    assert [e["class"] for e in wrong["explanations"]] == ["roses", "daisy", "tulips"]
    assert sorted(index["thumbnails"]) == sorted(r["overlay"] for r in index["images"])
    assert [r["correct"] for r in map(by_overlay.get, index["thumbnails"][:4])] == [True, False] * 2

    kinds = {a["kind"] for a in index["artifacts"]}
    assert {
        "gradcam_overlay",
        "gradcam_pp_overlay",
        "guided_backprop",
        "guided_gradcam",
        "feature_maps",
    } <= kinds
    assert {"filters", "filters_channels", "max_patches", "patch", "gradcam_grid"} <= kinds
    for artifact in index["artifacts"]:
        assert (out / artifact["file"]).is_file(), artifact
        assert {"kind", "file", "layer", "image", "label", "predicted", "probability"} <= set(artifact)

    assert [m["layer"] for m in index["feature_maps"]["layers"]] == [n for n, _ in conv_layers(_handmade())]
    assert [m["shown"] for m in index["feature_maps"]["layers"]] == [8, 8, 8, 8]
    assert index["filters"]["kernels"] == 32 and index["filters"]["in_channels"] == 3

    # Every patch's score is recomputed from the saved PNG, its box and the checkpoint.
    model = explain_stage.load_checkpoint(checkpoint).model
    targets = index["patches"]["targets"]
    assert [t["name"] for t in targets] == [*classes, "blocks.1.0:3"]
    for entry in targets:
        target = Target(entry["name"], entry["layer"], entry["class_index"], entry["channel"])
        assert 1 <= len(entry["patches"]) <= 2
        for patch in entry["patches"]:
            piece = to_tensor(np.asarray(Image.open(out / patch["file"])), model)
            again = rescore(model, piece, tuple(patch["box"]), 64, target, tuple(patch["position"]))
            assert again == pytest.approx(patch["score"], rel=1e-4, abs=1e-4)

    html = (out / "index.html").read_text()
    # Self-contained: every picture is embedded (MLflow's viewer cannot follow relative paths),
    # and each one links to its PNG beside the page, for full size from disk.
    figures = re.findall(r'<figure( class="wide")?><a href="([^"]+)"><img src="([^"]+)"', html)
    assert len(figures) == html.count("<img") > 0 and html.count('decoding="async"') == len(figures)
    # No loading="lazy": MLflow's sandboxed artifact frame never loads images below its fold.
    assert 'loading="lazy"' not in html
    for wide, link, source in figures:
        assert (out / link).is_file()
        mime, _, payload = source.partition(";base64,")
        assert mime in ("data:image/png", "data:image/webp"), source[:40]
        shown = Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB")
        full = Image.open(out / link).convert("RGB")
        # At display size (within 220 px, wide figures 900 px wide) and the same picture.
        assert shown.width <= (900 if wide else 220) and (wide or shown.height <= 220)
        expected = full.resize(shown.size, Image.Resampling.LANCZOS) if shown.size != full.size else full
        error = np.abs(np.asarray(shown, np.float32) - np.asarray(expected, np.float32)).mean()
        assert error < 12, (link, error)
    first = index["images"][0]["explanations"][0]
    assert {first["gradcam"], first["gradcam_pp"], first["gradcam_overlay"]} <= {
        link for _, link, _ in figures
    }
    assert "http" not in html and "<script" not in html
    assert "handmade_cnn" in html and "blocks.3.2" in html and "true daisy, predicted roses" in html


def _handmade() -> Classifier:
    spec = ModelParams(arch="handmade_cnn", weights="none", base="trainable", augmented=False)
    return build_model(spec, 3)


def test_the_stage_names_a_bad_class(in_tmp, monkeypatch):
    toy_checkpoint(in_tmp / "data/models/toy-cnn/model.pt", ["a", "b"])
    path = write_image(in_tmp / "img/0.png", fmt="PNG")
    (in_tmp / "data/eval/toy-cnn").mkdir(parents=True)
    pd.DataFrame(
        [{"path": str(path), "label": "a", "predicted": "a", "confidence": 0.9, "correct": True}]
    ).to_csv(in_tmp / "data/eval/toy-cnn/predictions.csv", index=False)
    params = parse_params(minimal_params(explain={"gradcam_class": "zebra"}))
    with pytest.raises(VisionlabError, match=r"explain.gradcam_class: no class 'zebra' \(classes: a, b\)"):
        explain_stage.explain_experiment(params, "toy-cnn")
    assert not (in_tmp / "data/explain/toy-cnn").exists()


def test_a_grey_model_gets_grey_pictures(tmp_path):
    spec = ModelParams(arch="handmade_cnn", weights="none", base="trainable", augmented=False)
    torch.manual_seed(0)
    model = build_model(spec, 2, grayscale=True).eval()
    rows = [
        {"path": str(write_image(tmp_path / f"in/{n}.jpg", seed=n)), "label": label, "predicted": "Cat"}
        | {"confidence": 0.6, "correct": label == "Cat"}
        for n, label in enumerate(["Cat", "Dog", "Dog"])
    ]
    settings = parse_params(
        minimal_params(explain={"feature_map_layers": ["blocks.0.0"], "patches_top_k": 1})
    ).explain
    checkpoint = Checkpoint(model, spec, ["Cat", "Dog"], image_size=48, grayscale=True)
    out = tmp_path / "out"
    out.mkdir()

    index = explain_stage.write_explanations(checkpoint, pd.DataFrame(rows), settings, out, "pets")

    assert Image.open(out / index["images"][0]["image"]).mode == "L"
    assert index["filters"]["colour"] is None and index["filters"]["in_channels"] == 1
    assert [m["layer"] for m in index["feature_maps"]["layers"]] == ["blocks.0.0"]
    patch = index["patches"]["targets"][0]["patches"][0]
    piece = to_tensor(np.asarray(Image.open(out / patch["file"])), model)
    assert piece.shape[0] == 1
    target = Target("Cat", index["layer"], class_index=0)
    again = rescore(model, piece, tuple(patch["box"]), 48, target, tuple(patch["position"]))
    assert again == pytest.approx(patch["score"], rel=1e-4, abs=1e-4)


def test_the_patch_search_sample_keeps_every_class():
    rows = pd.DataFrame(
        {"path": [f"{n:03d}.png" for n in range(203)], "label": ["common"] * 200 + ["rare"] * 3}
    )
    sample = model_views.scanned_rows(rows, 20)
    counts = sample.label.value_counts().to_dict()
    assert counts["rare"] >= 1 and 18 <= counts["common"] <= 21
    assert sample.path.is_monotonic_increasing and sample.path.is_unique
    assert model_views.scanned_rows(rows, None).equals(rows)


def test_a_new_explanation_method_is_one_registry_entry(tmp_path, monkeypatch):
    """A method written in a module of its own reaches the stage's files, index and gallery."""
    module = tmp_path / "saliency_method.py"
    module.write_text(
        textwrap.dedent(
            '''
            import numpy as np
            import torch

            from visionlab.explanations.methods import Method, Picture


            def saliency(inputs):
                """|d score / d pixel|, the plain gradient, as a grey picture."""
                image = inputs.tensor.detach().clone().unsqueeze(0).requires_grad_(True)
                inputs.model(image)[0, inputs.class_index].backward()
                grad = image.grad[0].abs().amax(dim=0)
                return {"saliency": (255 * grad / grad.max().clamp_min(1e-12)).to(torch.uint8).numpy()}


            PICTURE = Picture("saliency", "-saliency.png", "saliency", on_layer=False)
            METHOD = Method("saliency", (PICTURE,), saliency)
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from saliency_method import METHOD

    from visionlab.explanations import methods

    methods.register(METHOD)
    try:
        with pytest.raises(ValueError, match="already registered"):
            methods.register(METHOD)
        spec = ModelParams(arch="handmade_cnn", weights="none", base="trainable", augmented=False)
        torch.manual_seed(0)
        model = build_model(spec, 2).eval()
        rows = [
            {"path": str(write_image(tmp_path / f"in/{n}.jpg", seed=n)), "label": label, "predicted": "a"}
            | {"confidence": 0.6, "correct": label == "a"}
            for n, label in enumerate(["a", "b"])
        ]
        settings = parse_params(minimal_params(explain={"feature_map_layers": ["blocks.0.0"]})).explain
        checkpoint = Checkpoint(model, spec, ["a", "b"], image_size=48, grayscale=False)
        out = tmp_path / "out"
        out.mkdir()
        index = explain_stage.write_explanations(checkpoint, pd.DataFrame(rows), settings, out, "toy")
    finally:
        methods.unregister("saliency")
    assert "saliency" in index["methods"] and index["methods"][:4] == [
        "gradcam",
        "gradcam_pp",
        "guided_backprop",
        "guided_gradcam",
    ]
    item = index["images"][0]["explanations"][0]
    assert item["saliency"].endswith("-saliency.png") and (out / item["saliency"]).is_file()
    assert Image.open(out / item["saliency"]).mode == "L"
    listed = [a for a in index["artifacts"] if a["kind"] == "saliency"]
    assert len(listed) == sum(len(r["explanations"]) for r in index["images"])
    assert all(a["layer"] is None and a["explained"] for a in listed)
    assert f"saliency, class {item['class']}" in (out / "index.html").read_text()
    assert "saliency" not in {m.name for m in methods.registered()}
    with pytest.raises(ValueError, match="stays registered"):
        methods.unregister("gradcam")
