"""The `report` stage: compare every experiment and register each data set's best model."""

from __future__ import annotations

from visionlab.params import Params
from visionlab.reporting.build import ReportFiles, build_report


def report_stage(params: Params, _name: str = "report") -> ReportFiles:
    """DVC stage `report`: the report of ``visionlab report``, as ``report.register_best`` says."""
    return build_report(params)
