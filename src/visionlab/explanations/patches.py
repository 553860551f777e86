"""Maximally activating patches: the test-set image regions that drive a class, or a unit, most.

Finding them, for a target (a class, or channel ``c`` of a named layer):

1. Every test image goes through the model once. For a class, each position of the target layer's
   map (the Grad-CAM layer) gets its contribution to the class score, ``sum_k w_k A_k(i, j)`` with
   Grad-CAM's weights ``w_k``; for a unit, the position's value is the unit's activation. Each
   image proposes its best position.
2. The position's receptive field on the input is cut out as a square patch. Its size and
   placement are measured, not derived from the architecture (which branches and calls pooling
   functions in ways a module walk cannot follow): the gradient of the centre position w.r.t.
   random inputs gives the stride (input side / map side), the centre offset (centre of mass of
   the gradient) and the side (the smallest square holding 99% of the gradient's mass, at most
   half the input side so that a deep net's patch is still a part of the image).
3. **The score shown** is measured on the patch alone: the patch is pasted at its original place
   into a neutral canvas -- the normalised value 0 everywhere else, i.e. the model's mean colour,
   which is also what zero padding feeds the first convolution -- and the model is run on that
   canvas. For a class the score is the class logit (the margin for a fixed logit, see
   :mod:`visionlab.explanations.scores`); for a unit it is the unit's activation at the patch's
   position. The candidates of step 1 are ranked by this score and the top k kept, so every
   number shown can be recomputed from the saved patch, its box and the model
   (:func:`rescore`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from visionlab.errors import VisionlabError
from visionlab.explanations.scores import class_scores, evaluating, model_device, model_fixed_logits
from visionlab.models import Classifier

MASS = 0.99  # share of the centre position's gradient mass a patch must hold
MAX_FRACTION = 0.5  # a patch is at most this share of the input side
BATCH = 16


@dataclass(frozen=True)
class Target:
    """What the patches drive: class ``class_index``'s score, or ``channel`` of ``layer``."""

    name: str  # the class name, or "layer:channel"
    layer: str  # a unit's layer; for a class, the layer whose positions locate the patches
    class_index: int | None = None
    channel: int | None = None

    @property
    def kind(self) -> str:
        return "class" if self.class_index is not None else "unit"


@dataclass(frozen=True)
class Geometry:
    """Where each position of a layer's map looks on the input."""

    map_size: tuple[int, int]
    stride: tuple[float, float]
    offset: tuple[float, float]  # input coordinates of position (0, 0)'s centre
    side: int
    image_size: int

    def box(self, i: int, j: int) -> tuple[int, int, int]:
        """(top, left, side) of the patch of position (i, j), shifted to lie inside the image."""
        limit = self.image_size - self.side

        def start(centre: float) -> int:
            return min(max(round(centre - self.side / 2), 0), limit)

        return (
            start(self.offset[0] + i * self.stride[0]),
            start(self.offset[1] + j * self.stride[1]),
            self.side,
        )


@dataclass
class Patch:
    """One patch: from test image ``image_index``, at map position ``position``."""

    image_index: int
    position: tuple[int, int]
    strength: float  # step 1's number on the whole image: used to pick candidates only
    box: tuple[int, int, int] = (0, 0, 0)
    score: float = math.nan  # the score shown: the model on the patch alone
    extra: dict = field(default_factory=dict)


def parse_unit(spec: str, model: nn.Module) -> Target:
    """A ``layer:channel`` string (explain.patch_units) as a target, checked against the model."""
    layer, _, channel = spec.rpartition(":")
    modules = dict(model.named_modules())
    if not layer or not channel.isdigit():
        raise VisionlabError(f"explain.patch_units: {spec!r} is not 'layer:channel' (e.g. 'features.3:12')")
    if layer not in modules:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)][-8:]
        raise VisionlabError(
            f"explain.patch_units: the model has no layer {layer!r} "
            f"(its last conv layers are: {', '.join(convs)})"
        )
    return Target(spec, layer, channel=int(channel))


class _Capture:
    """Forward hooks keeping the outputs of some named layers."""

    def __init__(self, model: nn.Module, names: Sequence[str]):
        modules = dict(model.named_modules())
        self.outputs: dict[str, torch.Tensor] = {}
        self.handles = [modules[n].register_forward_hook(self._keeper(n)) for n in dict.fromkeys(names)]

    def _keeper(self, name: str) -> Callable:
        def keep(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            if not isinstance(output, torch.Tensor) or output.dim() != 4:
                raise VisionlabError(
                    f"explain: layer {name!r} outputs {tuple(getattr(output, 'shape', ()))}, not a "
                    "(batch, channels, height, width) map; patches need a convolutional layer"
                )
            self.outputs[name] = output

        return keep

    def __enter__(self) -> _Capture:
        return self

    def __exit__(self, *_exc: object) -> None:
        for handle in self.handles:
            handle.remove()


def receptive_field(model: nn.Module, layer: str, channels: int, image_size: int, seed: int = 0) -> Geometry:
    """Measure stride, centre offset and patch side of ``layer``'s positions (module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(4, channels, image_size, image_size, generator=generator)
    inputs = inputs.to(model_device(model)).requires_grad_(True)
    with evaluating(model), torch.enable_grad(), _Capture(model, [layer]) as capture:
        model(inputs)
        activation = capture.outputs[layer]
        h, w = activation.shape[-2:]
        ci, cj = h // 2, w // 2
        (gradient,) = torch.autograd.grad(activation[:, :, ci, cj].sum(), inputs)
    mass = gradient.abs().sum(dim=(0, 1)).double().cpu()
    stride = (image_size / h, image_size / w)
    total = float(mass.sum())
    if total == 0:  # the unit is dead on random inputs: fall back to the nominal geometry
        return Geometry(
            (h, w), stride, (stride[0] / 2, stride[1] / 2), max(1, math.ceil(max(stride))), image_size
        )
    ys = torch.arange(image_size, dtype=torch.float64)
    my = float((mass.sum(dim=1) * ys).sum() / total)
    mx = float((mass.sum(dim=0) * ys).sum() / total)
    # Chebyshev distance of each pixel from the centre: a square of half-side r holds the pixels
    # with distance <= r; take the smallest r that holds MASS of the gradient.
    distance = torch.maximum((ys[:, None] - my).abs(), (ys[None, :] - mx).abs()).flatten()
    order = torch.argsort(distance)
    cumulative = torch.cumsum(mass.flatten()[order], 0) / total
    radius = float(
        distance[order][int(torch.searchsorted(cumulative, torch.tensor(MASS, dtype=torch.float64)))]
    )
    side = math.ceil(2 * radius + 1)
    side = min(max(side, math.ceil(max(stride))), max(1, int(MAX_FRACTION * image_size)))
    return Geometry((h, w), stride, (my - ci * stride[0], mx - cj * stride[1]), side, image_size)


def canvas(image: torch.Tensor, box: tuple[int, int, int]) -> torch.Tensor:
    """The normalised CHW image with everything outside ``box`` set to the neutral value 0."""
    top, left, side = box
    blank = torch.zeros_like(image)
    blank[:, top : top + side, left : left + side] = image[:, top : top + side, left : left + side]
    return blank


def paste(patch: torch.Tensor, box: tuple[int, int, int], image_size: int) -> torch.Tensor:
    """A normalised CHW patch pasted at ``box`` into a neutral canvas of the input's size."""
    top, left, side = box
    if patch.shape[-2:] != (side, side):
        raise ValueError(f"patch of shape {tuple(patch.shape)} does not fit box {box}")
    blank = torch.zeros(patch.shape[0], image_size, image_size, dtype=patch.dtype)
    blank[:, top : top + side, left : left + side] = patch
    return blank


def target_scores(
    model: nn.Module,
    canvases: torch.Tensor,
    target: Target,
    positions: Sequence[tuple[int, int]],
    fixed: frozenset[int],
) -> torch.Tensor:
    """The score of ``target`` for each canvas: the class score, or the unit at its position."""
    with evaluating(model), torch.no_grad(), _Capture(model, [target.layer]) as capture:
        logits = model(canvases.to(model_device(model)))
        if target.class_index is not None:
            return class_scores(logits, target.class_index, fixed).float().cpu()
        activation = capture.outputs[target.layer]
        device = activation.device
        rows = torch.arange(len(positions), device=device)
        i = torch.tensor([p[0] for p in positions], device=device)
        j = torch.tensor([p[1] for p in positions], device=device)
        return activation[rows, target.channel, i, j].float().cpu()


def rescore(
    model: Classifier,
    patch: torch.Tensor,
    box: tuple[int, int, int],
    image_size: int,
    target: Target,
    position: tuple[int, int],
    fixed: frozenset[int] | None = None,
) -> float:
    """The score of one saved patch (normalised CHW), recomputed from the patch alone."""
    pasted = paste(patch, box, image_size)
    if fixed is None:
        fixed = model_fixed_logits(model, pasted)
    return float(target_scores(model, pasted[None], target, [position], fixed)[0])


def _batches(count: int, size: int) -> list[range]:
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def candidates(
    model: nn.Module,
    load: Callable[[int], torch.Tensor],
    count: int,
    targets: Sequence[Target],
    fixed: frozenset[int],
) -> dict[str, list[Patch]]:
    """Step 1: for every target, each image's best position, strongest first."""
    found: dict[str, list[Patch]] = {t.name: [] for t in targets}
    device = model_device(model)
    with evaluating(model), _Capture(model, [t.layer for t in targets]) as capture:
        for batch_range in _batches(count, BATCH):
            with torch.enable_grad():
                batch = torch.stack([load(i) for i in batch_range]).to(device).requires_grad_(True)
                logits = model(batch)
                outputs = dict(capture.outputs)
                class_targets = [t for t in targets if t.class_index is not None]
                for n, target in enumerate(class_targets):
                    activation = outputs[target.layer]
                    score = class_scores(logits, target.class_index, fixed).sum()
                    last = n == len(class_targets) - 1
                    (gradient,) = torch.autograd.grad(score, activation, retain_graph=not last)
                    weights = gradient.mean(dim=(2, 3), keepdim=True)
                    _propose(found[target.name], batch_range, (weights * activation).sum(dim=1).detach())
            for target in targets:
                if target.channel is not None:
                    _propose(
                        found[target.name], batch_range, outputs[target.layer][:, target.channel].detach()
                    )
    for proposals in found.values():
        proposals.sort(key=lambda p: (-p.strength, p.image_index))
    return found


def _propose(into: list[Patch], batch_range: range, maps: torch.Tensor) -> None:
    """Each image's best position of a (batch, h, w) map."""
    width = maps.shape[-1]
    best = maps.flatten(1).max(dim=1)
    for row, (value, flat) in enumerate(zip(best.values.tolist(), best.indices.tolist(), strict=True)):
        into.append(Patch(batch_range[row], divmod(int(flat), width), float(value)))


def top_patches(
    model: Classifier,
    load: Callable[[int], torch.Tensor],
    count: int,
    targets: Sequence[Target],
    top_k: int,
    image_size: int,
) -> dict[str, list[Patch]]:
    """The ``top_k`` patches of each target among ``count`` images (``load(i)``: normalised CHW)."""
    if count == 0:
        return {t.name: [] for t in targets}
    fixed = model_fixed_logits(model, load(0))
    geometries = {
        layer: receptive_field(model, layer, model.in_channels, image_size)
        for layer in dict.fromkeys(t.layer for t in targets)
    }
    proposals = candidates(model, load, count, targets, fixed)
    chosen: dict[str, list[Patch]] = {}
    for target in targets:
        # Rescore more candidates than needed: the whole-image ranking is only a proposal.
        pool = proposals[target.name][: max(3 * top_k, top_k + 5)]
        geometry = geometries[target.layer]
        for patch in pool:
            patch.box = geometry.box(*patch.position)
        for batch_range in _batches(len(pool), BATCH):
            part = [pool[i] for i in batch_range]
            canvases = torch.stack([canvas(load(p.image_index), p.box) for p in part])
            scores = target_scores(model, canvases, target, [p.position for p in part], fixed)
            for patch, score in zip(part, scores.tolist(), strict=True):
                patch.score = float(score)
        pool.sort(key=lambda p: (-p.score, p.image_index))
        chosen[target.name] = pool[:top_k]
    return chosen


def crop(pixels: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    top, left, side = box
    return pixels[top : top + side, left : left + side]
