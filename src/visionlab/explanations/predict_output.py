"""``visionlab predict`` results as text lines, CSV or JSON, for people and for scripts."""

from __future__ import annotations

import csv
import io
import json
import os
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
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
        "jpeg_quality": result.jpeg_quality,
        "note": result.note,
    }


def _csv_header(k: int) -> list[str]:
    header = ["path"]
    for rank in range(1, k + 1):
        header += [f"class_{rank}", f"probability_{rank}"]
    return [*header, "cam", "error", "jpeg_quality", "note"]


def _csv_row(result: PredictionResult, k: int) -> list[str]:
    record = _record(result)
    row = [record["path"]]
    for rank in range(k):
        if rank < len(result.top):
            name, probability = result.top[rank]
            row += [name, f"{probability:.6g}"]
        else:
            row += ["", ""]
    quality = "" if result.jpeg_quality is None else str(result.jpeg_quality)
    return [*row, record["cam"] or "", record["error"] or "", quality, result.note or ""]


def _csv_line(row: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    return buffer.getvalue()


def render_stream(results: Iterable[PredictionResult], fmt: Format, k: int) -> Iterator[str]:
    """``results`` in ``fmt``, a piece per result as it comes (the JSON list closes at the end).

    CSV: one row per file, so a spreadsheet or `csv.DictReader` sees the files as rows; ``k``
    top-class columns (failed files leave them empty), then the Grad-CAM file, the error, the JPEG
    quality and the note on a heavily compressed photo.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if fmt == "csv":
        yield _csv_line(_csv_header(k))
    first = True
    for result in results:
        if fmt == "text":
            yield format_result(result) + "\n"
        elif fmt == "csv":
            yield _csv_line(_csv_row(result, k))
        else:
            item = textwrap.indent(json.dumps(_record(result), indent=2), "  ")
            yield ("[\n" if first else ",\n") + item
        first = False
    if fmt == "json":
        yield "[]\n" if first else "\n]\n"


def render(results: list[PredictionResult], fmt: Format) -> str:
    """All results in ``fmt``; text is one line per file; CSV as wide as the widest top-k."""
    k = max((len(r.top) for r in results), default=0)
    return "".join(render_stream(results, fmt, k))


def write_stream(
    results: Iterable[PredictionResult],
    fmt: Format,
    k: int,
    output: Path | None,
    echo: Callable[..., None],
) -> tuple[int, int]:
    """Render ``results`` as they come: to stdout through ``echo``, or into ``output`` (through
    ``<output>.partial``, renamed when complete, so a stopped run leaves no truncated file under
    the name). Returns (files, failed files)."""
    counts = [0, 0]

    def counted() -> Iterator[PredictionResult]:
        for result in results:
            counts[0] += 1
            counts[1] += result.error is not None
            yield result

    pieces = render_stream(counted(), fmt, k)
    if output is None:
        for piece in pieces:
            echo(piece, nl=False)
        return counts[0], counts[1]
    output = Path(output)
    partial = output.with_name(output.name + ".partial")
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            for piece in pieces:
                handle.write(piece)
                handle.flush()
        if counts[0]:
            os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return counts[0], counts[1]
