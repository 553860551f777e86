"""Experiment tracking: one MLflow experiment per data set, one run per pipeline experiment."""

from visionlab.tracking.mlflow_run import (
    RUN_RECORD,
    TrackedRun,
    finishing,
    open_run,
    start_run,
    tracking_uri,
)

__all__ = ["RUN_RECORD", "TrackedRun", "finishing", "open_run", "start_run", "tracking_uri"]
