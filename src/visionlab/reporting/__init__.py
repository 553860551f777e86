"""The comparison report: every experiment's results side by side, with the studies' figures.

``build_report`` and ``ReportFiles`` load on first use: the report's modules pull in plotting and
tables (seconds), and `visionlab status` and `plan` import only ``pipeline_status`` from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from visionlab.reporting.build import ReportFiles, build_report

__all__ = ["ReportFiles", "build_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from visionlab.reporting import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
