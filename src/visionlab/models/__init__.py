"""Models: every architecture is a :class:`~visionlab.models.base.Classifier` built by name."""

from visionlab.models.base import Classifier
from visionlab.models.factory import Checkpoint, build_model, load_checkpoint, save_checkpoint

__all__ = ["Checkpoint", "Classifier", "build_model", "load_checkpoint", "save_checkpoint"]
