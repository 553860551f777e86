"""Log a trained classifier as an MLflow model: loadable with ``mlflow.pyfunc.load_model``, servable,
and registrable in the model registry.

The train stage already stores the raw checkpoint under the run's artifact path ``model``; this
module logs the MLflow model under the name ``mlflow_model`` so the two never collide.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import visionlab
from visionlab.tracking.mlflow_run import TrackedRun

log = logging.getLogger(__name__)

MODEL_NAME = "mlflow_model"
ENV_URI = "MLFLOW_TRACKING_URI"


class ProbabilityModel(nn.Module):
    """A classifier whose output is class probabilities, not logits: what a caller of a served
    model wants, and what the logged signature promises."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(x)
        if logits.shape[-1] == 1:  # one sigmoid output for two classes
            positive = torch.sigmoid(logits)
            return torch.cat([1 - positive, positive], dim=-1)
        return torch.softmax(logits, dim=-1)


def _requirements() -> list[str]:
    """Pinned explicitly: MLflow's inference of requirements loads the model in a subprocess
    (tens of seconds per model). Local version suffixes (``+cu132``) are dropped: pip cannot
    resolve them from PyPI."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("torch", "torchvision", "timm", "numpy", "pillow"):
        try:
            pins.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


@contextlib.contextmanager
def _fluent_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (which ``log_model`` uses) at ``uri`` for the block.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into the environment, which
    :func:`~visionlab.tracking.mlflow_run.tracking_uri` reads: both the module's URI and the
    variable are put back exactly as they were, so nothing later in the process is redirected.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_uri = tracking_utils._tracking_uri
    saved_env = os.environ.get(ENV_URI)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_uri)  # type: ignore[arg-type]  # None: back to unset
        if saved_env is None:
            os.environ.pop(ENV_URI, None)
        else:
            os.environ[ENV_URI] = saved_env


def log_classifier(
    run: TrackedRun,
    model: nn.Module,
    example: np.ndarray,
    classes: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Log ``model`` (wrapped to output probabilities) into ``run``; return the logged model's id.

    ``example``: one normalised input, shape (1, C, H, W), float32: the signature is derived from
    it with a free batch dimension, and it is stored as the model's input example.
    """
    import mlflow
    import mlflow.pytorch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    example = np.ascontiguousarray(example, dtype=np.float32)
    if example.ndim != 4 or example.shape[0] != 1:
        raise ValueError(f"the input example must have shape (1, C, H, W), got {example.shape}")
    wrapped = ProbabilityModel(model).eval().to("cpu")
    signature = ModelSignature(
        # Unnamed: a named tensor reaches the model as a dict, which the PyTorch flavour refuses.
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *example.shape[1:]))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(classes)))]),
    )
    # Known and chosen, so not worth a warning per model: no pip in a uv venv, the local "+cu132"
    # torch version, pickle (see below).
    names = ("mlflow.utils.environment", "mlflow.utils.requirements_utils", "mlflow.pytorch")
    quiet = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        with _fluent_tracking_uri(run.client.tracking_uri), mlflow.start_run(run_id=run.run_id):
            info = mlflow.pytorch.log_model(
                wrapped,
                name=MODEL_NAME,
                signature=signature,
                input_example=example,
                # pickle, not MLflow's default pt2 graph: torch.export specialises the batch size to
                # the example's and costs seconds per model; the pickle needs visionlab's classes,
                # so their source ships with the model (code_paths).
                serialization_format="pickle",
                code_paths=[str(Path(visionlab.__file__).parent)],
                pip_requirements=_requirements(),
                metadata={"classes": list(classes), **(metadata or {})},
            )
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    log.info("logged MLflow model %s (%s) in run %s", MODEL_NAME, info.model_id, run.run_id)
    return info.model_id
