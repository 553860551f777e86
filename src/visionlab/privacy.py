"""Usage telemetry stays off: visionlab runs on people's own, often private, images.

MLflow (3.x) sends usage events unless ``MLFLOW_DISABLE_TELEMETRY`` is true; DVC sends analytics
unless ``core.analytics`` is false (this project's ``.dvc/config`` sets it). Every visionlab entry
point (the stage scripts, the ``visionlab`` command, the servers it starts) turns MLflow's off
unless the user has set the variable themselves: ``MLFLOW_DISABLE_TELEMETRY=false`` turns it on.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

TELEMETRY_SWITCH = "MLFLOW_DISABLE_TELEMETRY"


def no_telemetry(environ: MutableMapping[str, str] = os.environ) -> None:
    """Disable MLflow's telemetry in ``environ`` unless it was set explicitly either way."""
    environ.setdefault(TELEMETRY_SWITCH, "true")
