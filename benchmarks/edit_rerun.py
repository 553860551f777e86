"""The edit-and-rerun loop: the README's quick try, then the same try with only the learning rate changed.

A copy of the project (its own git repository, the shipped ``params.yaml`` untouched) runs the
README's quick-try command exactly, with ``-S download.mirror=`` the shared samples folder; then
the same command with ``-S train.lr=...`` added, as a user tuning the rate would. Both go through
the real ``dvc exp run``. Each output line is timestamped as it arrives, so every stage's seconds
are the time from its "Running stage" line to the next one; what comes before the first and after
the last is DVC's own bookkeeping (reading dvc.yaml, hashing, committing the experiment).

Usage:  uv run python benchmarks/edit_rerun.py [--experiment flowers-cnn] [--lr 0.0005]
Writes benchmarks/results/edit_rerun.{json,md}.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import SHARED_DATASETS  # noqa: E402
from tests.integration.conftest import copy_project, git  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import source_commit, write_result  # noqa: E402

# The README's quick try (section "A quick try"), but for the experiment and the mirror.
QUICK_TRY = (
    "prepare.max_per_class=20",
    "augment.factor=2",
    "augment.image_size=64",
    "train.image_size=64",
    "train.epochs_cap=2",
    "train.num_workers=0",
    "explain.images_per_class=1",
    "explain.patches_max_images=10",
    "explain.feature_map_max_channels=8",
)
STAGE = re.compile(r"Running stage '([^']+)'")
TARGET_S = 60.0


def timed_run(project: Path, args: list[str]) -> tuple[float, list[tuple[float, str]], int]:
    """Seconds of the command, its output lines with their arrival times, and its exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "VISIONLAB_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(project / "src")
    env["PYTHONUNBUFFERED"] = "1"
    started = time.perf_counter()
    process = subprocess.Popen(
        args, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines = [(time.perf_counter() - started, line.rstrip()) for line in process.stdout]
    code = process.wait()
    return time.perf_counter() - started, lines, code


def stage_seconds(total: float, lines: list[tuple[float, str]]) -> dict[str, float]:
    """Seconds from each stage's "Running stage" line to the next; the rest is DVC's bookkeeping."""
    starts = [(at, match.group(1)) for at, line in lines if (match := STAGE.search(line))]
    found: dict[str, float] = {}
    if not starts:
        return {"dvc (nothing ran)": round(total, 2)}
    found["dvc before the first stage"] = round(starts[0][0], 2)
    ends = [at for at, _ in starts[1:]] + [_last_stage_end(lines, starts[-1][0], total)]
    for (at, name), end in zip(starts, ends, strict=True):
        found[name] = round(end - at, 2)
    found["dvc after the last stage"] = round(total - ends[-1], 2)
    return found


def _last_stage_end(lines: list[tuple[float, str]], start: float, total: float) -> float:
    """Where the last stage's output ends: DVC's closing lines ("Updating lock file", the
    experiment's summary) come after it."""
    for at, line in lines:
        if at > start and ("Updating lock file" in line or "Ran experiment" in line):
            return at
    return total


@click.command()
@click.option("--experiment", default="flowers-cnn", show_default=True)
@click.option("--lr", default=0.0005, show_default=True, help="the changed learning rate")
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "benchmarks" / "results")
def main(experiment: str, lr: float, out: Path) -> None:
    commit = source_commit(ROOT)  # as the run starts: the tree may change while it runs
    settings = [*QUICK_TRY, f"download.mirror={SHARED_DATASETS.resolve()}"]
    base = [sys.executable, "-m", "dvc", "exp", "run", f"explain@{experiment}"]
    base += [arg for setting in settings for arg in ("-S", setting)]
    runs = {}
    with tempfile.TemporaryDirectory(prefix="edit-rerun-") as scratch:
        project = copy_project(Path(scratch) / "project")
        git(project, "init", "-q")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "baseline")
        for name, args in (("quick try", base), ("lr only", [*base, "-S", f"train.lr={lr}"])):
            total, lines, code = timed_run(project, args)
            if code:
                tail = "\n".join(line for _, line in lines[-40:])
                raise click.ClickException(f"{name} failed ({code}):\n{tail}")
            runs[name] = {"seconds": round(total, 2), "stages": stage_seconds(total, lines)}
            print(f"{name}: {total:.1f} s", json.dumps(runs[name]["stages"]))
    rerun = runs["lr only"]["seconds"]
    result = {
        "commit": commit,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "load_average_at_start": os.getloadavg()[0],
        "experiment": experiment,
        "changed": f"train.lr={lr}",
        "runs": runs,
        "target_seconds": TARGET_S,
        "within_target": rerun < TARGET_S,
    }
    write_result(out, "edit_rerun", result, _markdown(result))


def _markdown(result: dict) -> str:
    lines = [
        "# Edit and rerun: the quick try, then only the learning rate changed",
        "",
        f"`dvc exp run explain@{result['experiment']}` with the README's quick-try settings, then the "
        f"same with `-S {result['changed']}`, at commit {result['commit'][:12]}; load average at "
        f"the start {result['load_average_at_start']:.2f} on {result['machine']['cpus']} CPUs.",
        "",
    ]
    for name, run in result["runs"].items():
        lines += [f"**{name}**: {run['seconds']:.1f} s", "", "| part | seconds |", "|---|---:|"]
        lines += [f"| {part} | {seconds:.1f} |" for part, seconds in run["stages"].items()]
        lines.append("")
    verdict = "within" if result["within_target"] else "over"
    lines.append(
        f"The lr-only rerun took {result['runs']['lr only']['seconds']:.1f} s: {verdict} the "
        f"{result['target_seconds']:.0f} s target."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
