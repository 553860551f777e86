"""Batch norm folded into the convolution before it, for a model that only predicts from now on.

In evaluation mode a batch norm is a fixed per-channel scale and shift, so the convolution it
follows can absorb it: ``w' = w * g / sqrt(var + eps)``, ``b' = beta + (b - mean) * g / sqrt(var +
eps)``. What remains of timm's ``BatchNormAct2d`` is its activation. On this CPU a bfloat16 pass of
EfficientNet-Lite spends a large share of its time in the separate normalisation (measured in
``benchmarks/predict_speed.py``); the logits agree with the unfolded model's to float rounding.

Only adjacent pairs are folded: a ``BatchNormAct2d`` whose previous sibling is the ``Conv2d`` that
feeds it, as in every timm EfficientNet block (``conv_stem``/``bn1``, ``conv_dw``/``bn1``,
``conv_pw``/``bn2``, ``conv_pwl``/``bn3``, ``conv_head``/``bn2``). Never fold a model that will
train again: the folded one has no batch statistics to update.
"""

from __future__ import annotations

import torch
from timm.layers import BatchNormAct2d
from torch import nn


class FoldedNormAct(nn.Module):
    """What a ``BatchNormAct2d`` does after its normalisation moved into the convolution: its
    dropout (identity in evaluation) and activation, under the same name so hooks still find it."""

    def __init__(self, norm: BatchNormAct2d):
        super().__init__()
        self.drop = norm.drop
        self.act = norm.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and type(norm) is BatchNormAct2d
        and norm.running_mean is not None
        and norm.running_var is not None
        and conv.out_channels == norm.num_features
    )


@torch.no_grad()
def _fold_pair(conv: nn.Conv2d, norm: BatchNormAct2d) -> None:
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
    conv.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)


def fold_batch_norms(model: nn.Module) -> int:
    """Fold every conv + ``BatchNormAct2d`` pair of ``model`` in place; how many were folded.

    The model must be in evaluation mode and stay there (an error otherwise, before any change).
    """
    if model.training:
        raise ValueError("fold_batch_norms: the model is in training mode; call .eval() first")
    folded = 0
    for parent in list(model.modules()):
        previous: tuple[str, nn.Module] | None = None
        for name, child in list(parent.named_children()):
            if previous is not None and _foldable(previous[1], child):
                _fold_pair(previous[1], child)  # type: ignore[arg-type]
                setattr(parent, name, FoldedNormAct(child))  # type: ignore[arg-type]
                folded += 1
            previous = (name, child)
    return folded
