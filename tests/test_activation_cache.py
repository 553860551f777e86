"""The cache at the unfreeze point: training the top on cached activations is training the net."""

import copy

import torch
import torch.nn.functional as F

from visionlab.models import build_model
from visionlab.models.base import CachedTop
from visionlab.params import ModelParams

SPEC = ModelParams(
    arch="efficientnet_lite0",
    weights="imagenet",
    base="finetune",
    unfreeze_from="backbone.blocks.5",
    augmented=False,
)


def _model():
    torch.manual_seed(0)
    model = build_model(SPEC, 3, load_weights=False)  # random weights: same graph, same arithmetic
    with torch.no_grad():  # non-trivial running statistics, so eval-mode BN is not the identity
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    model.unfreeze_from(SPEC.unfreeze_from)
    return model


def test_one_step_on_cached_activations_equals_one_step_of_the_whole_network():
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 1])
    whole = _model().train()
    cut = copy.deepcopy(whole)
    lower, upper = cut.split_at(SPEC.unfreeze_from)
    cut.train()
    # The frozen part stays in eval mode (running statistics) when the model trains: the cache
    # is only valid so. A frozen part with train-mode BN would normalise by each batch's
    # statistics and give other activations for the same image in every batch.
    assert not any(m.training for m in list(lower.modules())[1:])  # [0]: the wrapper
    assert all(m.training for m in list(upper.modules())[1:])
    with torch.no_grad():
        exact = lower(images)
        compact = exact.to(torch.bfloat16)  # as the featurize stage stores them by default
    assert exact.shape == (4, 112, 4, 4)  # 112 channels enter blocks.5 (14x14 at 224 px)

    top = CachedTop(upper, cut.head).train()
    logits = top(compact)
    approx = logits.detach()
    F.cross_entropy(whole_logits := whole(images), labels).backward()
    assert torch.allclose(whole_logits, approx, atol=0.05, rtol=0.05)  # bfloat16 rounding only

    logits = top(exact)  # one training step's forward and backward on float32 activations
    cut.zero_grad(set_to_none=True)
    F.cross_entropy(logits, labels).backward()
    assert torch.allclose(whole_logits, logits, atol=1e-5)
    trained = {name: p for name, p in whole.named_parameters() if p.requires_grad}
    assert trained and {n for n, p in cut.named_parameters() if p.requires_grad} == set(trained)
    for name, parameter in cut.named_parameters():
        if name in trained:
            assert torch.allclose(parameter.grad, trained[name].grad, atol=1e-5, rtol=1e-4), name
        else:
            assert parameter.grad is None, name  # nothing below the cut is trained


def test_models_cut_only_where_they_can():
    model = _model()
    assert model.split_at("backbone.blocks.5.1") is None  # inside a stage: not supported
    assert model.split_at("backbone.conv_head") is not None
    mobilenet = ModelParams(arch="mobilenet_v2", weights="imagenet", base="frozen", augmented=False)
    assert build_model(mobilenet, 3, load_weights=False).split_at("backbone.features.14") is None
