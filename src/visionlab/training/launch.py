"""Start the train stage's workers under torch.distributed.run, and report a dead one by its rank.

The stage process becomes torchrun's agent (``elastic_launch``, the engine behind ``torchrun``):
it meets the other machines at the rendezvous, starts ``nproc_per_node`` workers running
``visionlab.training.ddp_worker``, and when one of them dies it stops the others and returns.
No restarts: a rerun resumes from the last finished epoch, like the single-process path.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from visionlab.errors import VisionlabError
from visionlab.params import Params, TrainParams

log = logging.getLogger(__name__)

WORKER_MODULE = "visionlab.training.ddp_worker"


def processes(settings: TrainParams) -> int:
    return settings.nproc_per_node * settings.nnodes


def launch_config(settings: TrainParams, environ: Mapping[str, str] = os.environ) -> LaunchConfig:
    """torchrun's settings for this recipe: ``--standalone`` on one machine, else the rendezvous."""
    common = dict(
        nproc_per_node=settings.nproc_per_node,
        max_restarts=0,  # a dead worker ends the stage; rerunning resumes
        start_method="spawn",
    )
    if settings.nnodes == 1:
        # As torchrun --standalone: a private rendezvous on a free local port.
        return LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            run_id=str(uuid.uuid4()),
            rdzv_backend="c10d",
            rdzv_endpoint="localhost:0",
            **common,
        )
    endpoint = settings.rdzv_endpoint
    if endpoint is None:
        if not (environ.get("MASTER_ADDR") and environ.get("MASTER_PORT")):
            raise VisionlabError(
                f"train.rdzv_endpoint: train.nnodes is {settings.nnodes}, so every machine needs the "
                "rendezvous address: set train.rdzv_endpoint to host:port, or export MASTER_ADDR and "
                "MASTER_PORT (the Slurm example in docs/scaling.md does)"
            )
        endpoint = f"{environ['MASTER_ADDR']}:{environ['MASTER_PORT']}"
    configs: dict[str, object] = {}
    if settings.rdzv_backend == "static":
        rank = settings.node_rank
        if rank is None:
            found = environ.get("SLURM_NODEID") or environ.get("NODE_RANK")
            if found is None or not found.isdigit():
                raise VisionlabError(
                    "train.node_rank: the static rendezvous needs each machine's rank: set "
                    "train.node_rank, or run under Slurm ($SLURM_NODEID) or export NODE_RANK"
                )
            rank = int(found)
        if rank >= settings.nnodes:
            raise VisionlabError(f"train.node_rank: {rank} is not below train.nnodes ({settings.nnodes})")
        configs["rank"] = rank
    return LaunchConfig(
        min_nodes=settings.nnodes,
        max_nodes=settings.nnodes,
        run_id=settings.rdzv_id,
        rdzv_backend=settings.rdzv_backend,
        rdzv_endpoint=endpoint,
        rdzv_configs=configs,
        **common,
    )


def launch(
    work: Callable[[Params, str], object], params: Params, experiment: str, settings: TrainParams
) -> None:
    """Run ``work(params, experiment)`` in ``nproc_per_node`` workers here; raise naming a dead rank."""
    config = launch_config(settings)
    # The agent narrates every launch and failure; the stage reports a failure below, once.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    log.info(
        "%s: %d processes (%d per machine x %d machines), batch %d each, lr %g as given",
        experiment,
        processes(settings),
        settings.nproc_per_node,
        settings.nnodes,
        settings.batch_size,
        settings.lr,
    )
    with tempfile.TemporaryDirectory(prefix="visionlab-ddp-") as scratch:
        params_file = Path(scratch) / "params.yaml"
        params_file.write_text(worker_params_yaml(params))
        entry = f"{work.__module__}:{work.__qualname__}"
        args = [
            "-m",
            WORKER_MODULE,
            "--entry",
            entry,
            "--experiment",
            experiment,
            "--params",
            str(params_file),
        ]
        args += ["--errors", scratch]
        try:
            elastic_launch(config, sys.executable)(*args)
        except ChildFailedError as exc:
            raise VisionlabError(failure_message(experiment, exc.failures, Path(scratch))) from None


def worker_params_yaml(params: Params) -> str:
    """The params the stage validated, as YAML its workers validate exactly as the stage did.

    Only the keys that were set: a full dump would fill in every default, and some of those are
    refused when set beside another key (``models.<m>.augmented`` beside an experiment's
    ``train_images``), so the workers would reject what the stage accepted.
    """
    return yaml.safe_dump(params.model_dump(mode="json", exclude_unset=True), sort_keys=False)


def failure_message(experiment: str, failures: Mapping[int, ProcessFailure], errors: Path) -> str:
    """One sentence per failed rank, the root cause first.

    A rank killed from outside (SIGKILL, the OOM killer) comes first; then ranks that failed with a
    reason, earliest first (a survivor's "connection closed" comes after the death that caused it);
    last the ranks the agent itself stopped with SIGTERM.
    """

    def order(item: tuple[int, ProcessFailure]) -> tuple[int, int, int]:
        rank, failure = item
        kind = 2 if failure.exitcode == -signal.SIGTERM else 0 if failure.exitcode < 0 else 1
        return (kind, failure.timestamp, rank)

    ranked = sorted(failures.items(), key=order)
    if any(failure.exitcode != -signal.SIGTERM for _, failure in ranked):
        # Those the agent stopped are "the other workers" of the closing sentence.
        ranked = [(rank, failure) for rank, failure in ranked if failure.exitcode != -signal.SIGTERM]
    lines = []
    for rank, failure in ranked:
        if failure.exitcode == -signal.SIGTERM:
            what = "was stopped (SIGTERM)"
        elif failure.exitcode < 0:
            what = f"was killed by {failure.signal_name()}"
        else:
            reported = errors / f"rank-{rank}.txt"
            reason = reported.read_text().strip() if reported.is_file() else f"exit code {failure.exitcode}"
            what = f"failed: {reason}"
        lines.append(f"worker rank {rank} (pid {failure.pid}) {what}")
    first, *others = lines
    message = f"train@{experiment}: {first}"
    if others:
        message += "; then " + "; ".join(others)
    # A killed worker (OOM, preemption, a signal) leaves a run a rerun can continue; a worker that
    # failed with a reason fails the same way again until that reason is dealt with.
    killed = ranked[0][1].exitcode < 0
    advice = (
        "rerun the stage to resume from the last finished epoch"
        if killed
        else "fix the cause above, then rerun the stage (it resumes from the last finished epoch)"
    )
    return f"{message}. The other workers were stopped; {advice}."
