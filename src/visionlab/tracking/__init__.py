"""Experiment tracking: one MLflow experiment per data set, one run per pipeline experiment."""

from visionlab.tracking.mlflow_run import TrackedRun, open_run, start_run, tracking_uri

__all__ = ["TrackedRun", "open_run", "start_run", "tracking_uri"]
