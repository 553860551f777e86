"""The first convolution's kernels as pictures, as the cats-and-dogs study showed them.

All kernels share one min-max scale (over the whole weight tensor), so a weak kernel looks weak
next to a strong one. An RGB net gets two grids: one colour tile per kernel, and one grey tile per
kernel and input channel (a row per kernel); a grey net gets one grey tile per kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from visionlab.errors import VisionlabError
from visionlab.explanations.grids import Grid, grey, tile_grid, to_unit, upscale
from visionlab.explanations.scores import evaluating, model_device

TILE = 30  # pixels a side that a kernel is enlarged to (at least)


@dataclass(frozen=True)
class FilterGrids:
    layer: str
    kernels: int
    in_channels: int
    kernel_size: tuple[int, int]
    colour: Grid | None  # one RGB tile per kernel, for three input channels
    channels: Grid  # kernels x in_channels grey tiles (just one per kernel for a grey net)


def first_conv(model: nn.Module, example: torch.Tensor | None = None) -> tuple[str, nn.Conv2d]:
    """The convolution applied first to the input: by a forward pass when an example CHW image is
    given (branching nets register modules out of call order), else the first registered."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise VisionlabError(f"explain: {type(model).__name__} has no conv layer to show the filters of")
    if example is None:
        return convs[0]
    order: list[int] = []
    handles = [
        module.register_forward_hook(lambda *_, i=i: order.append(i)) for i, (_, module) in enumerate(convs)
    ]
    try:
        with evaluating(model), torch.no_grad():
            model(example.unsqueeze(0).to(model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    return convs[order[0]] if order else convs[0]


def filter_grids(layer: str, weight: torch.Tensor) -> FilterGrids:
    """Grids of every kernel of a conv weight (out, in, kh, kw)."""
    w = weight.detach().float().cpu().numpy()
    kernels, in_channels, kh, kw = w.shape
    unit = to_unit(w)  # one scale for all kernels
    factor = max(1, -(-TILE // max(kh, kw)))
    colour = None
    if in_channels == 3:
        colour = tile_grid(
            [upscale((k.transpose(1, 2, 0) * 255).round().astype(np.uint8), factor) for k in unit]
        )
    tiles = [upscale(grey(unit[o, i]), factor) for o in range(kernels) for i in range(in_channels)]
    columns = in_channels if in_channels > 1 else None
    return FilterGrids(layer, kernels, in_channels, (kh, kw), colour, tile_grid(tiles, columns=columns))


def model_filters(model: nn.Module, example: torch.Tensor | None = None) -> FilterGrids:
    name, conv = first_conv(model, example)
    return filter_grids(name, conv.weight)
