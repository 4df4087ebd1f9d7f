"""torch.distributed under torchrun: who am I, where do I run, and the few collectives the engine needs."""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from visionzoo.engine.hardware import usable_cores
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
    return torch.device("cpu")


def setup(device_choice: str) -> DistInfo:
    """Join the process group when launched by torchrun (RANK/WORLD_SIZE set); otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_choice, local_rank)
    if world_size > 1 and not dist.is_initialized():
        _init_process_group("nccl" if device.type == "cuda" else "gloo", rank, world_size)
    if device.type == "cpu" and world_size > 1:
        # torchrun sets OMP_NUM_THREADS=1 per process; on CPU share the cores instead (VISIONZOO_NUM_THREADS wins).
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        threads = int(os.environ.get("VISIONZOO_NUM_THREADS", 0)) or max(1, usable_cores() // local_world)
        torch.set_num_threads(threads)
    return DistInfo(rank, world_size, local_rank, device)


def _init_process_group(backend: str, rank: int, world_size: int) -> None:
    """init_process_group("env://"), its keys kept apart per torchrun attempt.

    torchrun keeps one store for all restarts of a job; without a prefix, a restarted group can read the
    addresses the dead workers published and fail to connect (gloo: "connectFullMesh failed").
    """
    timeout = datetime.timedelta(minutes=30)
    store, _, _ = next(dist.rendezvous("env://", rank, world_size, timeout=timeout))
    store = dist.PrefixStore(f"visionzoo/attempt-{restart_count()}", store)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)


def restart_count() -> int:
    """How many times torchrun has restarted the worker group (0 on the first attempt or without torchrun)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def elastic_run_id() -> str | None:
    """torchrun's rendezvous id (`--rdzv-id`, a fresh UUID with `--standalone`), safe as a file name.

    The same on every node and every restart of one job, so it names the job's default run directory.
    None outside torchrun and for the static rendezvous, whose id is the placeholder "none".
    """
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    if run_id in ("", "none"):
        return None
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def wrap_ddp(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """DistributedDataParallel over `model` (whose weights it broadcasts from rank 0).

    Buffers that are not dense tensors (BMN's sparse sampling matrix) are constants every rank builds the
    same way, and DDP cannot broadcast them, so it is told to leave them alone.
    """
    not_dense = [name for name, buffer in model.named_buffers() if buffer.layout != torch.strided]
    if not_dense:
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, not_dense)
    return DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)


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
    """Sum over ranks, on the process's device (NCCL reduces CUDA tensors only); returned where `values` was."""
    if not info.enabled:
        return values
    reduced = values.to(info.device, copy=True)
    dist.all_reduce(reduced)
    return reduced.to(values.device)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
