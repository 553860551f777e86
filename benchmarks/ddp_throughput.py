"""Data-parallel training as users start it: `dvc exp run -S train.nproc_per_node=N train@<experiment>`
on the shipped params.yaml, against one process, on the shared flowers sample.

A throw-away copy of the project gets the README quick try's sizes (``--per-class`` images per
class, ``--size`` px, ``--epochs``), the sample served from 127.0.0.1, and one `dvc repro` of the
chain up to the experiment's train stage. Then, interleaved for ``--rounds`` rounds (so a change in
the machine's load hits every case alike):

- ``1 process, T threads``: the baseline with the threads each of the N workers gets (cores / N,
  set by the launcher; here through ``OMP_NUM_THREADS``): what data parallelism itself buys;
- ``1 process, all cores``: torch's default threads, what a user gets without ``nproc_per_node``;
- ``N processes``: each worker on cores / N threads.

Each case is a forced rerun of the train stage alone (``dvc exp run -f -s``). Reported per case,
median over rounds: the training loop's images per second (every rank's images per second of rank
0's loop, validation excluded: ``results/<experiment>/training.json``) and the end-to-end seconds of
the `dvc exp run` command (DVC, process starts, rendezvous, data loading, validation included).

Usage:  uv run python benchmarks/ddp_throughput.py [--experiment flowers-cnn] [--processes 2]
Writes benchmarks/results/ddp_throughput.{json,md}.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the integration tests' project helpers and HTTP server

from tests.conftest import SHARED_DATASETS  # noqa: E402
from tests.http_server import serve  # noqa: E402
from tests.integration.conftest import copy_project, git, tiny_params  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from provenance import source_commit, write_result  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def _dvc(project: Path, *args: str, threads: int | None = None) -> float:
    """Run one DVC command in the copy; its wall seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "VISIONLAB_"))}
    env["PYTHONPATH"] = str(project / "src")
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return seconds


def _sized(project: Path, per_class: int, size: int, epochs: int) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["prepare"]["max_per_class"] = per_class
    params["augment"]["image_size"] = params["train"]["image_size"] = size
    params["train"]["epochs"] = epochs
    params["train"]["early_stopping_patience"] = 0  # every case runs every epoch
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _case(project: Path, experiment: str, nproc: int, threads: int | None, per_worker: int) -> dict:
    seconds = _dvc(
        project,
        "exp",
        "run",
        "-f",
        "-s",
        "-S",
        f"train.nproc_per_node={nproc}",
        f"train@{experiment}",
        threads=threads,
    )
    summary = json.loads((project / f"data/models/{experiment}/summary.json").read_text())
    assert summary["processes"] == nproc, summary
    timing = json.loads((project / f"results/{experiment}/training.json").read_text())
    return {
        "processes": nproc,
        "threads_per_process": per_worker if nproc > 1 else threads or torch.get_num_threads(),
        "images_per_second": timing["train_images_per_second"],
        "train_seconds": timing["train_seconds"],
        "dvc_exp_run_seconds": round(seconds, 2),
        "epochs_run": summary["epochs_run"],
    }


@click.command()
@click.option("--experiment", default="flowers-cnn", show_default=True, help="a shipped flowers experiment")
@click.option("--processes", default=2, show_default=True, help="N, compared with 1 process")
@click.option("--per-class", default=200, show_default=True, help="prepare.max_per_class")
@click.option("--size", default=128, show_default=True, help="train and augment image_size")
@click.option("--epochs", default=3, show_default=True)
@click.option("--rounds", default=2, show_default=True)
def main(experiment: str, processes: int, per_class: int, size: int, epochs: int, rounds: int) -> None:
    commit = source_commit(REPO)  # as the run starts: the tree may change while it runs
    cores = os.cpu_count() or 1
    per_worker = max(1, cores // processes)
    cases = [("1 process, T threads", 1, per_worker), ("1 process, all cores", 1, None)]
    cases.append((f"{processes} processes", processes, None))
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ddp-bench-") as scratch, serve(SHARED_DATASETS) as (url, _):
        project = copy_project(Path(scratch) / "project")
        tiny_params(project, url, SHARED_DATASETS, [experiment])
        _sized(project, per_class, size, epochs)
        git(project, "init", "-q")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "baseline")
        _dvc(project, "repro", f"train@{experiment}")  # the data stages, once
        for _ in range(rounds):
            for label, nproc, threads in cases:
                row = {"case": label, **_case(project, experiment, nproc, threads, per_worker)}
                print(json.dumps(row), flush=True)
                runs.append(row)

    def median(label: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs if r["case"] == label), 2)

    table = {
        label: {key: median(label, key) for key in ("images_per_second", "dvc_exp_run_seconds")}
        for label, _, _ in cases
    }
    many = table[f"{processes} processes"]["images_per_second"]
    summary = {
        "table": table,
        "ratio_vs_same_threads": round(many / table["1 process, T threads"]["images_per_second"], 3),
        "ratio_vs_all_cores": round(many / table["1 process, all cores"]["images_per_second"], 3),
    }
    meta = {
        "machine": f"{platform.machine()}, {cores} CPU cores, torch {torch.__version__}, CPU (gloo)",
        "command": f"dvc exp run -f -s -S train.nproc_per_node=N train@{experiment}",
        "experiment": experiment,
        "images_per_class": per_class,
        "image_size": size,
        "epochs": epochs,
        "rounds": rounds,
        "threads_per_worker": per_worker,
        "load_average_at_end": os.getloadavg()[0],
        "commit": commit,
    }
    lines = [
        f"# Data-parallel training through `dvc exp run`: 1 vs {processes} processes",
        "",
        f"{meta['machine']}; the shipped `{experiment}` on the shared flowers sample, {per_class} images "
        f"per class, {size} px, {epochs} epochs; `{meta['command']}`, median of {rounds} interleaved "
        f"rounds; load average {meta['load_average_at_end']:.1f} at the end; commit {commit}.",
        "",
        "images/s = every rank's training images per second of rank 0's training loop (validation",
        "excluded, `results/<experiment>/training.json`); end-to-end = the whole `dvc exp run`.",
        "",
        "| case | threads per process | images/s | end-to-end (s) |",
        "|---|---:|---:|---:|",
    ]
    for label, nproc, threads in cases:
        shown = per_worker if nproc > 1 else threads or torch.get_num_threads()
        row = table[label]
        lines.append(f"| {label} | {shown} | {row['images_per_second']} | {row['dvc_exp_run_seconds']} |")
    lines += [
        "",
        f"{processes} processes / 1 process on the same threads per process: "
        f"**{summary['ratio_vs_same_threads']}**; / 1 process on all cores: "
        f"**{summary['ratio_vs_all_cores']}**.",
    ]
    write_result(
        RESULTS, "ddp_throughput", {"meta": meta, "summary": summary, "runs": runs}, "\n".join(lines)
    )


if __name__ == "__main__":
    main()
