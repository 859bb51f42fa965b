"""Multi-process data parallel training under ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node N -m pixelrnn train ...`` starts N copies of the same command; each
reads RANK / WORLD_SIZE / LOCAL_RANK from the environment, joins a process group (nccl on
GPUs, gloo on CPUs) and trains on its share of every global batch. Only rank 0 writes files.
Without those variables everything here is a no-op for a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> Context:
    """Join the process group if launched with several processes; pick this rank's device."""
    if not launched_by_torchrun():
        return Context(device=device)
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return Context(rank, world, device)


def all_reduce_sum(tensor: torch.Tensor, context: Context) -> torch.Tensor:
    if context.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(context: Context) -> None:
    if context.active:
        dist.barrier()
