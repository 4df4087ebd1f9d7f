"""Deterministic sample order and augmentation, independent of workers, ranks and restarts.

Samplers yield keys (index, epoch); a dataset draws its random augmentation from `sample_rng(seed,
epoch, index)`. So an item is the same whichever worker or rank loads it, and a run resumed mid-epoch,
or split over N processes, sees exactly the data an uninterrupted single-process run sees.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

SampleKey = tuple[int, int]


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng((seed, epoch, index))


def epoch_permutation(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


class TrainSampler(Sampler[SampleKey]):
    """Shuffled, last partial global batch dropped; rank r takes its slice of each global batch.

    With world size W and per-rank batch b, global batch i is permutation[i*W*b:(i+1)*W*b] and rank r
    gets positions [r*b, (r+1)*b) of it, so W processes of batch b see what one process of batch W*b sees.
    `start_batch` skips batches already trained on, for a resume in the middle of an epoch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world_size)

    def __len__(self) -> int:
        return (self.batches_per_epoch() - self.start_batch) * self.batch_size

    def __iter__(self) -> Iterator[SampleKey]:
        order = epoch_permutation(self.n, self.seed, self.epoch)
        global_batch = self.batch_size * self.world_size
        for step in range(self.start_batch, self.batches_per_epoch()):
            begin = step * global_batch + self.rank * self.batch_size
            for index in order[begin : begin + self.batch_size]:
                yield index, self.epoch


class EvalSampler(Sampler[SampleKey]):
    """Each sample exactly once over all ranks (contiguous shards, no padding duplicates)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        per_rank, extra = divmod(n, world_size)
        self.begin = rank * per_rank + min(rank, extra)
        self.end = self.begin + per_rank + (1 if rank < extra else 0)

    def __len__(self) -> int:
        return self.end - self.begin

    def __iter__(self) -> Iterator[SampleKey]:
        for index in range(self.begin, self.end):
            yield index, 0


def loader_workers(requested: int, cores: int, local_processes: int) -> int:
    """At most the cores each local process has: torchrun's processes share the machine's cores, and more
    workers than that only contend with the training threads (and make torch warn about the total)."""
    return max(0, min(requested, cores // max(1, local_processes)))


def local_loader_workers(requested: int) -> int:
    """`loader_workers` for this process: its CPU set (os.sched_getaffinity) over LOCAL_WORLD_SIZE (torchrun)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return loader_workers(requested, cores, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def make_loader(
    dataset: Dataset,
    sampler: Sampler[SampleKey],
    batch_size: int,
    workers: int,
    collate: Callable[[list[Any]], Any],
    pin_memory: bool = False,
) -> DataLoader:
    """The loader draws its worker seeds from a generator of its own, leaving the global RNG (dropout) alone.
    `workers` (the recipe's `-j`) is an upper bound, fitted to the cores of this local process."""
    workers = local_loader_workers(workers)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
        generator=torch.Generator(),
        worker_init_fn=_exit_quietly_on_sigterm,
    )


def _exit_quietly_on_sigterm(worker_id: int) -> None:
    """A loader worker ends at once on SIGTERM, whatever it is doing, with status 0.

    It would otherwise keep the training process's handler (which only sets a flag) and could never be
    stopped; and a worker killed by a signal makes torch raise in the main process wherever that is, while
    the main process, which got the same SIGTERM or is shutting its workers down, is saving its state.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))


def report_worker_deaths_where_waited() -> None:
    """Let a dead loader worker be reported where the main process waits for its data (torch checks every few
    seconds), not by the SIGCHLD handler torch installs with the first multi-process iterator, which raises
    wherever the main process happens to be: in an optimizer step, a checkpoint write, a `finally` block.
    Call it once such an iterator exists."""
    if hasattr(signal, "SIGCHLD") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
