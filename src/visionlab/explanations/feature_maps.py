"""Feature maps: what every convolution of the model outputs for one image, one tile per channel.

The maps are the raw outputs of each ``nn.Conv2d`` (before batch norm and activation, which many
architectures apply as separate modules or functions). Each channel is min-max scaled on its own,
so a weak but structured channel stays visible; a constant (dead) channel shows as one flat colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visionlab.errors import VisionlabError
from visionlab.explanations.grids import Grid, coloured, tile_grid, to_unit, upscale
from visionlab.explanations.scores import evaluating, model_device

MIN_TILE = 48  # small maps (7x7) are enlarged to at least this many pixels a side
MAX_TILE = 96  # big maps (224x224) are shrunk to at most this


@dataclass(frozen=True)
class LayerMaps:
    """One layer's grid: ``shown`` of its ``channels`` channels, in channel order."""

    layer: str
    grid: Grid
    channels: int
    shown: int
    map_size: tuple[int, int]


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every 2-D convolution, in registration order (the forward order for the zoo's models)."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def chosen_layers(model: nn.Module, names: list[str] | None) -> list[tuple[str, nn.Module]]:
    """The named layers (explain.feature_map_layers), or every conv layer when ``names`` is None."""
    if names is None:
        return conv_layers(model)
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        convs = [n for n, _ in conv_layers(model)]
        raise VisionlabError(
            f"explain.feature_map_layers: the model has no layer {', '.join(map(repr, unknown))} "
            f"(its conv layers are: {', '.join(convs[:40])}{' ...' if len(convs) > 40 else ''})"
        )
    return [(n, modules[n]) for n in names]


def feature_maps(
    model: nn.Module, image: torch.Tensor, layers: list[tuple[str, nn.Module]]
) -> dict[str, torch.Tensor]:
    """Each layer's output (C, h, w) for one normalised CHW image, from a single forward pass."""
    captured: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def keep(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                # Clone: an in-place activation after the conv would otherwise change it.
                captured[name] = output[0].detach().float().cpu().clone()

        return keep

    handles = [module.register_forward_hook(hook(name)) for name, module in layers]
    try:
        with evaluating(model), torch.no_grad():
            model(image.unsqueeze(0).to(model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    return {name: captured[name] for name, _ in layers if name in captured}


def _tile_side(side: int) -> int:
    return min(max(side, MIN_TILE), MAX_TILE)


def channel_grid(layer: str, maps: torch.Tensor, max_channels: int | None) -> LayerMaps:
    """One tile per channel of ``maps`` (C, h, w), the first ``max_channels`` of them."""
    channels = maps.shape[0]
    shown = channels if max_channels is None else min(channels, max_channels)
    h, w = maps.shape[-2:]
    scale = max(1, -(-MIN_TILE // max(h, w)))  # whole-pixel enlargement, rounded up
    # Shrink big maps by whole-pixel averaging so that no channel's detail is aliased away.
    shrink = max(1, -(-max(h, w) // MAX_TILE))
    selected = maps[:shown]
    if shrink > 1:
        selected = torch.nn.functional.avg_pool2d(selected.unsqueeze(0), shrink, ceil_mode=True)[0]
    tiles = [upscale(coloured(to_unit(channel.numpy())), scale) for channel in selected]
    return LayerMaps(layer, tile_grid(tiles), channels, shown, (h, w))


def layer_grids(
    model: nn.Module,
    image: torch.Tensor,
    layer_names: list[str] | None = None,
    max_channels: int | None = 64,
) -> list[LayerMaps]:
    """Feature-map grids of the chosen (default: every conv) layer for one normalised image."""
    layers = chosen_layers(model, layer_names)
    if not layers:
        raise VisionlabError(f"explain: {type(model).__name__} has no conv layer to show feature maps of")
    maps = feature_maps(model, image, layers)
    return [channel_grid(name, tensor, max_channels) for name, tensor in maps.items()]
