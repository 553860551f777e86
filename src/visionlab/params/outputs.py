"""The sections of params.yaml for what a trained model yields: evaluate, explain and report."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from visionlab.params.common import Name, Section, Workers

# evaluate.robustness names: <kind>_<amount>, e.g. downscale_128 (a 128 px short side and back up),
# jpeg_30 (re-encoded at JPEG quality 30), blur_2 (Gaussian blur, radius 2 px)
DEGRADATION = re.compile(r"^(downscale|jpeg|blur)_([1-9][0-9]*)$")


class EvaluateParams(Section):
    batch_size: Annotated[int, Field(ge=1)] = 32
    num_workers: Workers = "auto"
    # Test-time augmentation, scored beside the plain test accuracy: hflip = mean of the class
    # probabilities of the image and its mirror image.
    tta: list[Literal["hflip"]] = []
    robustness: list[str] = []  # val and test degraded, one metric each (DEGRADATION above)

    @field_validator("robustness")
    @classmethod
    def _degradations(cls, names: list[str]) -> list[str]:
        for name in names:
            match = DEGRADATION.match(name)
            if not match:
                raise ValueError(f"{name!r}: expected downscale_<px>, jpeg_<quality> or blur_<radius>")
            if match[1] == "jpeg" and int(match[2]) > 100:
                raise ValueError(f"{name!r}: JPEG quality goes from 1 to 100")
        return names


class ExplainParams(Section):
    """The explain stage: Grad-CAM(++), guided backprop, feature maps, filters, top patches."""

    images_per_class: Annotated[int, Field(ge=1, le=50)] = 2
    target_layer: str | None = None  # null = the model's cam_layer()
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.5
    gradcam_class: str | None = None  # also explain this class for every image; null = predicted only
    feature_map_image: str | None = None  # a test image path; null = the first correct test image
    feature_map_layers: list[str] | None = None  # null = every conv layer
    feature_map_max_channels: Annotated[int, Field(ge=1)] | None = 64  # null = all channels
    patches_top_k: Annotated[int, Field(ge=1, le=64)] = 8
    patches_max_images: Annotated[int, Field(ge=1)] | None = 500  # test images scanned; null = all
    patch_units: list[str] = []  # extra "layer:channel" units, besides every output class
    device: Literal["auto", "cpu", "cuda"] = "auto"


class ReportParams(Section):
    """The report stage: every experiment compared, and each data set's best model registered."""

    published: str = "config/published_results.yaml"  # the studies' published test accuracies
    thumbnails: Annotated[int, Field(ge=0, le=50)] = 8  # explanation thumbnails per model
    thumbnail_px: Annotated[int, Field(ge=16, le=512)] = 96
    register_best: bool = True  # best model per data set -> registry <registry_prefix>-<dataset>@best
    registry_prefix: Name = "visionlab"
