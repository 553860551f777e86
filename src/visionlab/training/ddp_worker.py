"""One data-parallel worker, started by ``training/launch.py`` through torch.distributed.run.

torchrun's agent sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT;
this joins the process group (NCCL on CUDA, gloo on the CPU) and runs the stage's own function
(``--entry module:function``, e.g. the train stage's ``train_experiment``), which then shards its
epochs and leaves the outputs to rank 0. Like torchrun, it runs what it is given: it imports no
stage module itself.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import logging
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from visionlab.errors import VisionlabError
from visionlab.params import load_params, trace
from visionlab.runtime.device import select_device
from visionlab.stage import configure_logging

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """A worker whose agent is killed outright (SIGKILL, no chance to stop it) dies too: no orphans."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the agent died before the request took effect
        os._exit(1)


def _join(device: torch.device) -> None:
    local_rank = int(os.environ["LOCAL_RANK"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise VisionlabError(
                f"train.nproc_per_node: {local_world} processes per machine but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s); use one process per GPU"
            )
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", timeout=timedelta(minutes=30))
    else:
        # The workers share the machine's cores instead of each starting one thread per core.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
        dist.init_process_group("gloo", timeout=timedelta(minutes=30))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entry", required=True, help="module:function taking (params, experiment)")
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--params", required=True)
    parser.add_argument("--errors", required=True, help="folder for this rank's one-line failure reason")
    args = parser.parse_args(argv)
    _die_with_parent()
    configure_logging()
    rank = os.environ.get("RANK", "?")
    trace.start("train", args.experiment)  # the stage's reads, rank by rank (VISIONLAB_TRACE_PARAMS)
    try:
        params = load_params(args.params)
        _join(select_device(params.recipe_of(args.experiment).device))
        module, function = args.entry.split(":")
        getattr(importlib.import_module(module), function)(params, args.experiment)
        return 0
    except VisionlabError as exc:
        reason = str(exc)
    except dist.DistError as exc:  # a peer died or vanished: the agent names the rank that did
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    except Exception as exc:  # a bug: keep its traceback in this worker's stderr
        log.exception("worker rank %s failed", rank)
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    # The agent reads this back and names the rank in the stage's single error message.
    (Path(args.errors) / f"rank-{rank}.txt").write_text(reason + "\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
