"""What every model in the zoo offers the training, evaluation and explanation code."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from visionlab.errors import VisionlabError


class Classifier(nn.Module):
    """A backbone that ends in a feature vector, and a head that maps it to class logits.

    Splitting the two lets a frozen backbone's features be computed once and cached, and lets
    Grad-CAM find the last spatial layer by name. ``head`` holds exactly the parameters that are
    trained while the backbone is frozen; parameter-free steps (global pooling, flatten) belong to
    ``forward_features`` so that the cached features stay small.
    """

    arch: str = ""  # the params' arch name, set by build_model (error messages use it)
    # Input normalisation the weights expect, applied to pixels scaled to [0, 1].
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    in_channels: int = 3
    # The input side the architecture needs (a flatten layer sized for it, or the size its
    # weights were trained at); None = any size works.
    default_image_size: int | None = None
    feature_dim: int  # width of forward_features' output, i.e. of the head's input
    head: nn.Module

    # Freezing state: the whole backbone, or everything registered before ``trainable_from``.
    backbone_frozen: bool = False
    trainable_from: str | None = None
    # Fine-tuning with the base's batch norms on their running statistics (``hold_batch_norms``).
    batch_norm_held: bool = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        head_ids = {id(p) for p in self.head.parameters()}
        return (p for p in self.parameters() if id(p) not in head_ids)

    def cam_layer(self) -> nn.Module:
        """The last layer with a spatial output: Grad-CAM's default target."""
        raise NotImplementedError

    def split_at(self, name: str) -> tuple[nn.Module, nn.Module] | None:
        """``(lower, upper)`` with ``upper(lower(x)) == forward_features(x)``, cut where module
        ``name`` begins, sharing this model's modules; None where this model cannot be cut there.

        The featurize stage caches ``lower``'s output (the activations entering the first
        unfrozen block) so fine-tuning runs only ``upper`` and the head. That is exact only while
        ``lower`` is frozen and in eval mode (batch norm on its running statistics), which
        ``unfreeze_from`` guarantees.
        """
        return None

    def l2_weights(self) -> Iterator[torch.Tensor]:
        """Kernels that ``spec.l2`` applies to (Keras' kernel_regularizer): backbone or whole net."""
        return iter(())

    def head_l2_weights(self) -> Iterator[torch.Tensor]:
        """Kernels that ``spec.head.l2`` applies to: the new classifier's dense layers."""
        return iter(())

    def freeze_backbone(self) -> None:
        for parameter in self.backbone_parameters():
            parameter.requires_grad_(False)
        self.backbone_frozen = True
        self.trainable_from = None
        self.train(self.training)

    def block_names(self) -> list[str]:
        """The backbone's blocks in order: the natural ``unfreeze_from`` points.

        The children (with parameters) of each top-level module except the head.
        """
        names = []
        for top, module in self.named_children():
            if module is self.head:
                continue
            children = [(n, m) for n, m in module.named_children() if _has_parameters(m)]
            if children:
                names.extend(f"{top}.{n}" for n, _ in children)
            elif _has_parameters(module):
                names.append(top)
        return names

    def check_block_name(self, name: str) -> None:
        """Raise a VisionlabError unless ``name`` is a backbone module that unfreeze_from accepts."""
        modules = dict(self.named_modules())
        label = self.arch or type(self).__name__
        if not name or name not in modules:
            raise VisionlabError(
                f"unfreeze_from: {label} has no module {name!r}; its blocks, in order: "
                f"{', '.join(self.block_names())} (any name from model.named_modules() works)"
            )
        if modules[name] in set(self.head.modules()):
            raise VisionlabError(
                f"unfreeze_from: {name!r} is part of {label}'s head, which is always trainable; "
                f"name a backbone block: {', '.join(self.block_names())}"
            )

    def unfreeze_from(self, name: str) -> list[str]:
        """Make the backbone trainable from module ``name`` onward; return the parameters unfrozen.

        "Onward" is registration order (``named_modules()``), which every model of the zoo keeps
        equal to execution order. Modules before ``name`` stay frozen and in eval mode, so their
        batch-norm statistics do not drift while the later blocks are fine-tuned.
        """
        self.check_block_name(name)
        head_ids = {id(p) for p in self.head.parameters()}
        unfrozen = []
        started = False
        for module_name, module in self.named_modules():
            started = started or module_name == name
            for param_name, parameter in module.named_parameters(recurse=False):
                if id(parameter) in head_ids:
                    continue
                parameter.requires_grad_(started)
                if started:
                    unfrozen.append(f"{module_name}.{param_name}")
        self.backbone_frozen = False
        self.trainable_from = name
        self.train(self.training)
        return unfrozen

    def frozen_modules(self) -> list[nn.Module]:
        """Modules that must stay in eval mode because their parameters are not being trained."""
        if not self.backbone_frozen and self.trainable_from is None:
            return []
        head = set(self.head.modules())
        frozen = []
        for module_name, module in self.named_modules():
            if module_name == self.trainable_from:
                break
            if module is self or module in head:
                continue
            # Ancestors of the first trainable module contain trainable parts: leave them be.
            if self.trainable_from is not None and self.trainable_from.startswith(module_name + "."):
                continue
            frozen.append(module)
        return frozen

    def train(self, mode: bool = True) -> Classifier:
        """A frozen backbone (or frozen part of it) stays in eval mode: its statistics must not drift."""
        super().train(mode)
        if mode:
            for module in self.frozen_modules():
                module.training = False
            _hold_if_asked(self)
        return self


class CachedTop(nn.Module):
    """The trainable top of a model cut by ``split_at``: cached activations in, class logits out.

    Shares its modules with the whole model, so training it trains the model's own weights.
    """

    batch_norm_held: bool = False  # as the whole model's (``hold_batch_norms``)

    def __init__(self, upper: nn.Module, head: nn.Module):
        super().__init__()
        self.upper, self.head = upper, head

    def train(self, mode: bool = True) -> CachedTop:
        super().train(mode)
        if mode:
            _hold_if_asked(self)
        return self

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        # Stored compactly (bfloat16): computed in the parameters' precision like any input.
        return self.head(self.upper(activations.float()))


def hold_batch_norms(net: Classifier | CachedTop) -> None:
    """Keep the base's batch norms in ``net`` on their running statistics while the rest of it trains.

    ``train.finetune_batch_norm: frozen``, as Keras' fine-tuning guide advises: in train mode a batch
    norm normalises by each small batch and moves its running statistics towards the new data, so the
    features the head was just fitted on shift under it as the second phase begins. Its scale and
    shift still train.
    """
    net.batch_norm_held = True
    net.train(net.training)


def _hold_if_asked(net: Classifier | CachedTop) -> None:
    """The base's batch norms only: a head's own (``head.batch_norm``) is new and learns its statistics."""
    if net.batch_norm_held:
        head = set(net.head.modules())
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module not in head:
                module.training = False


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def kernels(module: nn.Module) -> Iterator[torch.Tensor]:
    """The weights of every conv and dense layer in ``module`` (not biases, not batch norm)."""
    return (m.weight for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear))


def dense_kernels(module: nn.Module) -> Iterator[torch.Tensor]:
    return (m.weight for m in module.modules() if isinstance(m, nn.Linear))


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_keras_parameters(model: nn.Module) -> int:
    """Keras' "total params": every parameter plus batch norm's running mean and variance."""
    running = sum(
        b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var"))
    )
    return sum(p.numel() for p in model.parameters()) + running
