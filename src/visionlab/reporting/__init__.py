"""The comparison report: every experiment's results side by side, with the studies' figures."""

from visionlab.reporting.build import ReportFiles, build_report

__all__ = ["ReportFiles", "build_report"]
