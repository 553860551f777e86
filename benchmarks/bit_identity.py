"""Does a refactor change any result? The tiny pipeline at a git revision and at the work tree, file by file.

Each side is a copy of the project (the revision through ``git archive``, the work tree as it is)
with the integration tests' tiny settings on the shared flowers sample, served over HTTP from
127.0.0.1 as the real download stage fetches it. Both run the same real ``dvc repro`` of the
chosen experiments; then every file the model stages wrote (features, models, evaluation,
explanations, results) is compared byte for byte. Wall-clock figures are the one expected
difference, so JSON and CSV files are compared with their timing fields left out (keys named
like ``seconds``, ``per_s``, ``img_s``, ``wall``, ``started``); everything else must be equal.

Usage:  uv run python benchmarks/bit_identity.py --ref HEAD [--experiment flowers-cnn ...]
Exits 1 and lists the files that differ when any does. The verdict, with both commits (the work
tree's marked ``-dirty`` when it has uncommitted changes), goes to ``benchmarks/results/bit_identity.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import SHARED_DATASETS  # noqa: E402
from tests.http_server import serve  # noqa: E402
from tests.integration.conftest import copy_project, dvc, git, tiny_params  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import revision_commit, source_commit  # noqa: E402

# One of each kind of run: a from-scratch CNN on images, a frozen base on cached features, a
# fine-tune on cached activations (two phases).
DEFAULT_EXPERIMENTS = ("flowers-cnn", "flowers-effnet", "flowers-best")
OUTPUTS = ("data/features", "data/models", "data/eval", "data/explain", "results")
RESULTS = ROOT / "benchmarks" / "results"
TIMING = re.compile(r"seconds|_s$|per_s|img_s|images_per_second|wall|started|finished|duration|run_id")


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if not TIMING.search(str(k))}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def fingerprint(path: Path) -> str:
    """The file's content hash; for JSON and CSV, of its content without the timing fields."""
    data = path.read_bytes()
    if path.suffix == ".json":
        data = json.dumps(_without_timing(json.loads(data)), sort_keys=True).encode()
    elif path.suffix == ".csv":
        import pandas as pd

        frame = pd.read_csv(io.BytesIO(data))
        frame = frame[[c for c in frame.columns if not TIMING.search(str(c))]]
        data = frame.to_csv(index=False).encode()
    return hashlib.sha256(data).hexdigest()


def _timing_alone(path: Path) -> bool:
    """A JSON file that holds timing fields only: nothing in it can match between two runs."""
    if path.suffix != ".json":
        return False
    try:
        content = json.loads(path.read_bytes())
    except ValueError:
        return False
    return isinstance(content, dict) and bool(content) and not _without_timing(content)


def outputs(project: Path) -> dict[str, str]:
    found = {}
    for top in OUTPUTS:
        for path in sorted((project / top).rglob("*")):
            # mlflow_run.json names the run's random MLflow id: different by design
            if path.is_file() and "resume" not in path.parts and path.name != "mlflow_run.json":
                if _timing_alone(path):  # featurize.json: seconds only, which a rerun never repeats
                    continue
                found[str(path.relative_to(project))] = fingerprint(path)
    return found


def _from_revision(ref: str, source: Path) -> Path:
    """The project files of ``ref`` extracted into ``source`` (no work tree of it is needed)."""
    result = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=False)
    if result.returncode:
        raise click.BadParameter(f"git archive {ref}: {result.stderr.decode().strip()}", param_hint="--ref")
    archive = result.stdout
    source.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(source, filter="data")
    return source


def copy_side(source: Path, target: Path, url: str, experiments: tuple[str, ...]) -> Path:
    """A tiny project copied from ``source``, committed as its own git repository."""
    project = copy_project(target, source)
    tiny_params(project, url, SHARED_DATASETS, experiments)
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "baseline")
    return project


def write_result(results: Path, record: dict) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "bit_identity.json").write_text(json.dumps(record, indent=2) + "\n")


def run_side(project: Path, experiments: tuple[str, ...]) -> dict[str, str]:
    dvc(project, "repro", *(f"explain@{name}" for name in experiments))
    return outputs(project)


@click.command()
@click.option("--ref", default="HEAD", show_default=True, help="the revision to compare the work tree with")
@click.option("--experiment", "experiments", multiple=True, help=f"default: {', '.join(DEFAULT_EXPERIMENTS)}")
@click.option(
    "--results", type=click.Path(file_okay=False, path_type=Path), default=RESULTS, show_default=True
)
def main(ref: str, experiments: tuple[str, ...], results: Path) -> None:
    experiments = experiments or DEFAULT_EXPERIMENTS
    with tempfile.TemporaryDirectory(prefix="bit-identity-") as scratch, serve(SHARED_DATASETS) as served:
        url, _ = served
        before_dir = Path(scratch) / "before"
        before_dir.mkdir()
        source = _from_revision(ref, before_dir / "source")
        # Both copies are taken before either runs: the work tree may change while they do.
        ref_project = copy_side(source, before_dir / "project", url, experiments)
        tree_project = copy_side(ROOT, Path(scratch) / "after", url, experiments)
        # The commits as the copies were taken, not after the runs
        commits = {"ref": ref, "ref_commit": revision_commit(ROOT, ref), "work_tree": source_commit(ROOT)}
        before = run_side(ref_project, experiments)
        after = run_side(tree_project, experiments)
    differ = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    print(f"{len(before)} files at {ref}, {len(after)} in the work tree; {len(differ)} differ")
    for name in differ:
        side = (
            "only at ref" if name not in after else "only in work tree" if name not in before else "content"
        )
        print(f"  {name}: {side}")
    write_result(
        results,
        {
            **commits,
            "experiments": list(experiments),
            "files_at_ref": len(before),
            "files_in_work_tree": len(after),
            "differ": differ,
            "identical": not differ,
        },
    )
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
