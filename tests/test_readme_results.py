"""The README's full-scale results are generated from the committed result file, never typed in."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _full_scale():
    spec = importlib.util.spec_from_file_location(
        "full_scale_tables", REPO / "benchmarks" / "full_scale_tables.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_table_is_the_one_the_result_file_gives():
    full_scale = _full_scale()
    rows = json.loads((REPO / "benchmarks/results/full_scale.json").read_text())["rows"]
    readme = (REPO / "README.md").read_text()
    start, end = readme.index(full_scale.README_BEGIN), readme.index(full_scale.README_END)
    written = readme[start : end + len(full_scale.README_END)]
    assert written == full_scale.render_readme_table(rows), (
        "README.md's full-scale table differs from benchmarks/results/full_scale.json: run "
        "`uv run python benchmarks/full_scale.py --table-only`"
    )
    done = [row for row in rows if row.get("status") == "done"]
    assert done and all(f"| `{row['experiment']}`" in written for row in done)
