"""Data-parallel training: where this process stands among the workers, and the collectives fit needs.

With ``train.nproc_per_node x train.nnodes`` above 1 the train stage starts its workers under
torch.distributed.run (see ``training/launch.py``); every worker runs the same training code on its
shard of each epoch. Outside such a worker the helpers below are identities, so the single-process
path stays exactly what it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes outputs, logs to MLflow and saves resume checkpoints."""
        return self.rank == 0


def world() -> World:
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Each value summed over every rank, bit-identical on every rank.

    Reduced on rank 0 and broadcast from there (rather than an all-reduce) so that early-stopping
    and plateau decisions taken from these numbers cannot differ between ranks.
    """
    if world().size == 1:
        return values
    # NCCL only moves CUDA tensors; gloo takes CPU ones.
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.reduce(tensor, dst=0)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


def gather(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order, on every rank (a collective: all ranks must call)."""
    if world().size == 1:
        return [obj]
    gathered: list[Any] = [None] * world().size
    dist.all_gather_object(gathered, obj)
    return gathered


def sync_buffers(net: nn.Module) -> None:
    """Give every rank rank 0's buffers (batch-norm statistics) before it validates.

    DDP broadcasts them at each forward, then each rank's last forward moves its own copy; rank 0's
    are the ones its checkpoint keeps, so every rank validates with those.
    """
    if world().size == 1:
        return
    for buffer in net.buffers():
        dist.broadcast(buffer.data, src=0)


def wrap(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` under DistributedDataParallel in a worker (gradients averaged each step), else itself."""
    if world().size == 1:
        return net
    if device.type != "cuda":
        return DistributedDataParallel(net)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return DistributedDataParallel(net, device_ids=[index])
