"""The default loader workers fit the cores of each local process (issue 23, item 5)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from conftest import make_tiny_cifar

from visionzoo.cli import main
from visionzoo.data import sampling
from visionzoo.data.sampling import loader_workers


@pytest.mark.parametrize(
    ("requested", "cores", "processes", "expected"),
    [(2, 2, 1, 2), (2, 2, 2, 1), (2, 1, 1, 1), (2, 2, 3, 0), (4, 16, 2, 4), (8, 16, 4, 4), (0, 16, 1, 0)],
)
def test_workers_are_the_cores_per_local_process_at_most(requested, cores, processes, expected) -> None:
    assert loader_workers(requested, cores, processes) == expected


def test_train_on_one_core_per_process_starts_one_worker_and_torch_does_not_warn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 cores shared by torchrun's 2 local processes: each process has one core (its affinity), so the
    recipe's 2 workers become 1, below the count torch warns about (it reads the same affinity)."""
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    started = []
    real_loader = sampling.DataLoader
    monkeypatch.setattr(
        sampling, "DataLoader", lambda *a, **kw: started.append(kw["num_workers"]) or real_loader(*a, **kw)
    )
    data = make_tiny_cifar(tmp_path / "cifar")
    argv = ["--model", "tiny_test_net", "--data", str(data), "-j", "2", "--amp", "off", "--epochs", "1", "-b", "16"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", "cspdarknet53_cifar10", "--output", str(tmp_path / "run"), *argv]) == 0
    assert started and set(started) == {1}
    assert not [w for w in caught if "worker" in str(w.message)]
