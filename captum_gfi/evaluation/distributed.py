"""Sharding an evaluation across ``torch.distributed`` processes.

Launched with ``torchrun --nproc_per_node=K`` the environment holds
``RANK``/``WORLD_SIZE``; the process group uses NCCL when CUDA is available and
gloo otherwise. Each rank evaluates the work units ``i`` with
``i % world_size == rank`` and appends its records to its own shard file; rank
0 merges the shards after a barrier.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size, local rank, and whether this process started the group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env() -> DistInfo:
    """Join the process group described by torchrun's environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, False)
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local_rank, True)


def shard(items: Sequence[T], rank: int, world_size: int) -> list[tuple[int, T]]:
    """``(index, item)`` pairs of this rank: indices ``rank, rank + world, ...``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return [(i, items[i]) for i in range(rank, len(items), world_size)]


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.world_size > 1 and dist.is_initialized():
        dist.barrier()


def finish(info: DistInfo) -> None:
    """Leave the process group if this process created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()
