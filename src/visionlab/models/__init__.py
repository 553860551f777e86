"""Models: every architecture is a :class:`~visionlab.models.base.Classifier` built by name."""

from visionlab.models.base import Classifier
from visionlab.models.registry import Checkpoint, build_model, load_checkpoint, save_checkpoint

__all__ = ["Checkpoint", "Classifier", "build_model", "load_checkpoint", "save_checkpoint"]
