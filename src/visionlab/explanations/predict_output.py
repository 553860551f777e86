"""``visionlab predict`` results as text lines, CSV or JSON, for people and for scripts."""

from __future__ import annotations

import csv
import io
import json
from typing import Literal

from visionlab.explanations.predict import PredictionResult, format_result

Format = Literal["text", "csv", "json"]
FORMATS: tuple[Format, ...] = ("text", "csv", "json")


def _record(result: PredictionResult) -> dict:
    return {
        "path": str(result.path),
        "top": [{"class": name, "probability": probability} for name, probability in result.top],
        "cam": None if result.cam is None else str(result.cam),
        "error": result.error if result.error is not None else result.cam_error,
    }


def _csv(results: list[PredictionResult]) -> str:
    # One row per file, so a spreadsheet or `csv.DictReader` sees the files as rows; the widest
    # top-k sets the columns (failed files leave them empty).
    k = max((len(r.top) for r in results), default=0)
    header = ["path"]
    for rank in range(1, k + 1):
        header += [f"class_{rank}", f"probability_{rank}"]
    header += ["cam", "error"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for result in results:
        record = _record(result)
        row = [record["path"]]
        for rank in range(k):
            if rank < len(result.top):
                name, probability = result.top[rank]
                row += [name, f"{probability:.6g}"]
            else:
                row += ["", ""]
        row += [record["cam"] or "", record["error"] or ""]
        writer.writerow(row)
    return buffer.getvalue()


def render(results: list[PredictionResult], fmt: Format) -> str:
    """All results in ``fmt``; text is today's one line per file."""
    if fmt == "text":
        return "".join(format_result(result) + "\n" for result in results)
    if fmt == "csv":
        return _csv(results)
    if fmt == "json":
        return json.dumps([_record(result) for result in results], indent=2) + "\n"
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
