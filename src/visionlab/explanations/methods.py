"""The per-image explanation methods: one registry entry each.

An entry says what the method computes for one test image and one class, which pictures it saves
(file name ending, gallery caption, whether the picture belongs to the target layer), and the
explain stage, the artifact index and the gallery all read it: adding a method is one
``register(Method(...))`` plus, where it needs them, params. The computations import torch lazily,
so the report, which reads only the pictures' names and captions, stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ImageInputs:
    """One test image and one class to explain, with results methods share computed once."""

    model: Any  # nn.Module in eval mode
    layer: Any  # the target layer (nn.Module)
    tensor: Any  # the normalised CHW image (torch.Tensor)
    rgb: np.ndarray  # the image as the gallery shows it (HxWx3 or HxW uint8)
    class_index: int
    alpha: float  # overlay opacity (explain.alpha)
    _shared: dict[str, Any] = field(default_factory=dict)

    def maps(self) -> Any:
        """Grad-CAM and Grad-CAM++ maps and the class probabilities (gradcam.ClassMaps)."""
        if "maps" not in self._shared:
            from visionlab.explanations.gradcam import class_maps

            self._shared["maps"] = class_maps(self.model, self.layer, self.tensor, self.class_index)
        return self._shared["maps"]

    def guided(self) -> Any:
        """The guided-backpropagation gradient of the class score (CHW torch.Tensor)."""
        if "guided" not in self._shared:
            from visionlab.explanations.guided import guided_backprop

            self._shared["guided"] = guided_backprop(self.model, self.tensor, self.class_index)
        return self._shared["guided"]


@dataclass(frozen=True)
class Picture:
    key: str  # the key in each explanation record and the artifact kind in index.json
    suffix: str  # the file name's ending after the image's stem and the class
    caption: str  # the gallery's caption, before ", class X (p = ...)"
    on_layer: bool = True  # drawn from the target layer (else from the input alone)


@dataclass(frozen=True)
class Method:
    name: str  # listed in index.json's "methods"
    pictures: tuple[Picture, ...]
    compute: Callable[[ImageInputs], dict[str, np.ndarray]]  # picture key -> the picture to save


def _gradcam(inputs: ImageInputs) -> dict[str, np.ndarray]:
    from visionlab.explanations.gradcam import colour, overlay

    cam = inputs.maps().gradcam
    return {"gradcam": colour(cam), "gradcam_overlay": overlay(inputs.rgb, cam, inputs.alpha)}


def _gradcam_pp(inputs: ImageInputs) -> dict[str, np.ndarray]:
    from visionlab.explanations.gradcam import colour, overlay

    cam = inputs.maps().gradcam_pp
    return {"gradcam_pp": colour(cam), "gradcam_pp_overlay": overlay(inputs.rgb, cam, inputs.alpha)}


def _guided_backprop(inputs: ImageInputs) -> dict[str, np.ndarray]:
    from visionlab.explanations.guided import gradient_image

    return {"guided_backprop": gradient_image(inputs.guided())}


def _guided_gradcam(inputs: ImageInputs) -> dict[str, np.ndarray]:
    from visionlab.explanations.guided import gradient_image, guided_grad_cam

    both = guided_grad_cam(
        inputs.model,
        inputs.layer,
        inputs.tensor,
        inputs.class_index,
        cam=inputs.maps().gradcam,
        guided=inputs.guided(),
    )
    return {"guided_gradcam": gradient_image(both)}


_METHODS: list[Method] = [
    Method(
        "gradcam",
        (
            Picture("gradcam", "-gradcam.png", "Grad-CAM heatmap"),
            Picture("gradcam_overlay", "-overlay.png", "Grad-CAM"),
        ),
        _gradcam,
    ),
    Method(
        "gradcam_pp",
        (
            Picture("gradcam_pp", "-gradcampp.png", "Grad-CAM++ heatmap"),
            Picture("gradcam_pp_overlay", "-gradcampp-overlay.png", "Grad-CAM++"),
        ),
        _gradcam_pp,
    ),
    Method(
        "guided_backprop",
        (Picture("guided_backprop", "-guided.png", "guided backprop", on_layer=False),),
        _guided_backprop,
    ),
    Method(
        "guided_gradcam",
        (Picture("guided_gradcam", "-guided-gradcam.png", "guided Grad-CAM"),),
        _guided_gradcam,
    ),
]
CORE = "gradcam"  # every record's heatmap and overlay, the report's thumbnails: never unregistered


def registered() -> tuple[Method, ...]:
    return tuple(_METHODS)


def register(method: Method) -> None:
    """Add a per-image method; its picture keys and file endings must be new."""
    keys = {p.key for m in _METHODS for p in m.pictures}
    suffixes = {p.suffix for m in _METHODS for p in m.pictures}
    if method.name in {m.name for m in _METHODS}:
        raise ValueError(f"an explanation method named {method.name!r} is already registered")
    for picture in method.pictures:
        if picture.key in keys or picture.suffix in suffixes:
            raise ValueError(f"{method.name}: picture {picture.key!r} ({picture.suffix}) is already taken")
    _METHODS.append(method)


def unregister(name: str) -> None:
    if name == CORE:
        raise ValueError(f"{CORE!r} gives every record its heatmap and overlay: it stays registered")
    _METHODS[:] = [m for m in _METHODS if m.name != name]
