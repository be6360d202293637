"""Data-parallel training under torchrun (DESIGN.md §7): gloo on CPU, NCCL on GPU.

`torchrun --nproc_per_node N -m kdasr train ...` sets RANK/WORLD_SIZE/LOCAL_RANK; without them
everything here is a no-op and training runs in one process. Rank r takes batches r, r+N, ...
of the (seed, epoch) batch order, so one global step consumes N batches; gradients are averaged
by DistributedDataParallel; rank 0 alone writes checkpoints and logs. Per-rank RNG states are
gathered into the checkpoint so a resumed run continues every rank exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the torchrun process group if there is one; pick the device (cuda:LOCAL_RANK on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    if world > 1 and not dist.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return DistInfo(rank, world, local, device)


def sync_flags(info: DistInfo, flags: list[bool]) -> list[bool]:
    """Rank 0's decisions (stop, checkpoint now, ...) for every rank, so collectives stay in step."""
    if info.world == 1:
        return flags
    t = torch.tensor([int(f) for f in flags], dtype=torch.int64, device=info.device)
    dist.broadcast(t, src=0)
    return [bool(x) for x in t.tolist()]


def gather_objects(info: DistInfo, obj) -> list:
    if info.world == 1:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
