"""How long the comparison commands take, and how wide they print, on the tiny project.

A copy of the project with the integration tests' tiny settings (every flowers experiment in
params.yaml, the shared flowers sample served from 127.0.0.1) runs ``dvc repro
explain@flowers-cnn`` and then ``dvc exp run`` variants of the learning rate, as a user comparing
a few runs would. Then each comparison command of docs/experiments.md is timed (best of
``--rounds``) and its widest printed line measured: the README's target is ``dvc exp show`` within
10 s and a table that fits 120 columns.

Usage:  uv run python benchmarks/exp_show_speed.py [--variants 2] [--rounds 2]
Writes benchmarks/results/exp_show_speed.{json,md}.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from provenance import source_commit, write_result  # noqa: E402

from tests.conftest import SHARED_DATASETS  # noqa: E402
from tests.http_server import serve  # noqa: E402
from tests.integration.conftest import copy_project, dvc, git, tiny_params  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
EXPERIMENT = "flowers-cnn"
# The commands as docs/experiments.md writes them (a terminal of 120 columns for the width).
COMMANDS = {
    "dvc exp show (README's --drop/--keep)": [
        "-m",
        "dvc",
        "exp",
        "show",
        "--no-pager",
        "--drop",
        ".*",
        "--keep",
        r"Experiment|train\.lr$|(.*flowers-cnn/metrics.json:)?test\.accuracy$",
    ],
    "dvc exp show (every column)": ["-m", "dvc", "exp", "show", "--no-pager"],
    "dvc exp show --json": ["-m", "dvc", "exp", "show", "--json"],
    "visionlab compare": ["-m", "visionlab.cli", "compare"],
}


def _timed(project: Path, args: list[str]) -> tuple[float, str]:
    env = {**os.environ, "COLUMNS": "120", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("VISIONLAB_PROJECT_ROOT", None)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *args], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if result.returncode:
        raise click.ClickException(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return seconds, result.stdout


def _widest(output: str) -> int:
    return max((len(line) for line in output.splitlines()), default=0)


@click.command()
@click.option("--variants", default=2, show_default=True, help="dvc exp run variants of train.lr")
@click.option("--rounds", default=2, show_default=True)
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=RESULTS)
def main(variants: int, rounds: int, results: Path) -> None:
    commit = source_commit(ROOT)
    with tempfile.TemporaryDirectory(prefix="exp-show-") as scratch, serve(SHARED_DATASETS) as served:
        url, _ = served
        project = copy_project(Path(scratch) / "project")
        tiny_params(project, url, SHARED_DATASETS)
        git(project, "init", "-q")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "baseline")
        start = time.perf_counter()
        dvc(project, "repro", f"explain@{EXPERIMENT}")
        repro_s = time.perf_counter() - start
        runs = []
        for n in range(variants):
            lr = 3e-3 / 10**n  # never the recipe's own 1e-3: each variant changes something
            start = time.perf_counter()
            dvc(project, "exp", "run", f"explain@{EXPERIMENT}", "-S", f"train.lr={lr:g}")
            runs.append({"lr": lr, "seconds": round(time.perf_counter() - start, 1)})
        for args in COMMANDS.values():  # warm-up: DVC's caches and Python's bytecode
            _timed(project, args)
        rows = []
        for name, args in COMMANDS.items():
            times, output = [], ""
            for _ in range(rounds):
                seconds, output = _timed(project, args)
                times.append(seconds)
            width = _widest(output) if not name.endswith("--json") else None
            shown = output.splitlines()[:12] if width is not None else []
            rows.append(
                {"command": name, "best_seconds": round(min(times), 2), "widest_line": width, "output": shown}
            )
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "commit": commit,
        "experiments_in_params": "every flowers experiment of params.yaml",
        "repro_seconds": round(repro_s, 1),
        "exp_runs": runs,
        "rounds": rounds,
    }
    lines = [
        "# The comparison commands on the tiny project (benchmarks/exp_show_speed.py)",
        "",
        f"{meta['machine']}; {meta['experiments_in_params']}; `dvc repro explain@{EXPERIMENT}` "
        f"({meta['repro_seconds']} s) then {len(runs)} `dvc exp run -S train.lr=...` variants; "
        f"best of {rounds}, COLUMNS=120; load average at the end {meta['load_average_at_end']}; "
        f"commit {commit[:12]}.",
        "",
        "| command | seconds | widest line (columns) |",
        "|---|---:|---:|",
    ]
    for r in rows:
        width = r["widest_line"] if r["widest_line"] is not None else "–"
        lines.append(f"| `{r['command']}` | {r['best_seconds']} | {width} |")
    write_result(results, "exp_show_speed", {"meta": meta, "rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
