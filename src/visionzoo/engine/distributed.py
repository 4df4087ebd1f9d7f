"""torch.distributed under torchrun: who am I, where do I run, and the few collectives the engine needs."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from visionzoo.errors import VisionZooError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise VisionZooError("--device cuda: no CUDA device is available on this machine")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if choice not in ("auto", "cpu"):
        raise VisionZooError(f"--device {choice}: expected auto, cpu or cuda")
    return torch.device("cpu")


def setup(device_choice: str) -> DistInfo:
    """Join the process group when launched by torchrun (RANK/WORLD_SIZE set); otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_choice, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    if device.type == "cpu" and world_size > 1:
        # torchrun sets OMP_NUM_THREADS=1 per process; on CPU share the cores instead (VISIONZOO_NUM_THREADS wins).
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        threads = int(os.environ.get("VISIONZOO_NUM_THREADS", 0)) or max(1, (os.cpu_count() or 1) // local_world)
        torch.set_num_threads(threads)
    return DistInfo(rank, world_size, local_rank, device)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(info: DistInfo, obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not info.enabled:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_reduce_sum(info: DistInfo, values: torch.Tensor) -> torch.Tensor:
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values)
    return values


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
