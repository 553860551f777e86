"""Models: every architecture is a :class:`~visionlab.models.base.Classifier` built by name.

The names below load on first use (PEP 562): ``import visionlab.models.weights`` to find a weights
file then needs neither the zoo nor timm and torchvision, which take about 2 s to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from visionlab.models.base import Classifier
    from visionlab.models.factory import Checkpoint, build_model, load_checkpoint, save_checkpoint

_HOMES = {
    "Classifier": "visionlab.models.base",
    "Checkpoint": "visionlab.models.factory",
    "build_model": "visionlab.models.factory",
    "load_checkpoint": "visionlab.models.factory",
    "save_checkpoint": "visionlab.models.factory",
}

__all__ = ["Checkpoint", "Classifier", "build_model", "load_checkpoint", "save_checkpoint"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value
