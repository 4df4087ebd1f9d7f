"""A CPU run stopped and resumed ends with weights bitwise equal to an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import preempted_after
from safetensors.torch import load_file

from visionzoo.engine.trainer import RunOptions, train
from visionzoo.recipes import get_recipe


def _recipe(data: Path, **changes):
    base = dict(
        data=str(data),
        epochs=2,
        batch_size=16,
        workers=0,
        lr=0.05,
        sched="cosine",
        warmup_epochs=0.5,
        model="tiny_test_net",
    )
    return get_recipe("cspdarknet53_cifar10").replace(**(base | changes))


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "last.safetensors"))


@pytest.mark.parametrize("stop_after", [5, 7], ids=["at-epoch-end", "mid-epoch"])
def test_resume_is_bitwise_exact(tiny_cifar: Path, tmp_path: Path, stop_after: int) -> None:
    straight = train(_recipe(tiny_cifar), RunOptions(output=tmp_path / "straight"))
    with preempted_after(stop_after):
        stopped = train(_recipe(tiny_cifar), RunOptions(output=tmp_path / "split"))
    assert stopped["interrupted"]
    resumed = train(_recipe(tiny_cifar), RunOptions(output=tmp_path / "split", resume="auto"))

    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert resumed["final"]["top1"] == straight["final"]["top1"]
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_dropout_rng_and_ema_state_resume_exactly(tiny_cifar: Path, tmp_path: Path) -> None:
    changes = dict(drop_rate=0.3, ema_decay=0.9, epochs=1)
    train(_recipe(tiny_cifar, **changes), RunOptions(output=tmp_path / "a"))
    with preempted_after(2):
        train(_recipe(tiny_cifar, **changes), RunOptions(output=tmp_path / "b"))
    train(_recipe(tiny_cifar, **changes), RunOptions(output=tmp_path / "b", resume="auto"))
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_run_directory_holds_the_documented_files(tiny_cifar: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = train(_recipe(tiny_cifar, epochs=1), RunOptions(output=run))
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "last.safetensors",
        "best.safetensors",
        "last.state.pt",
    ):
        assert (run / name).is_file(), name
    record = json.loads((run / "metrics.jsonl").read_text())
    for key in ("epoch", "train_loss", "lr", "samples_per_sec", "epoch_time_s", "top1", "top5"):
        assert key in record
    state = torch.load(run / "last.state.pt", weights_only=True)
    assert state["epoch"] == 1 and state["global_step"] == 5
    assert set(state["rng"][0]) == {"torch", "cuda", "numpy", "python"}
    assert summary["best"]["metric"] == "top1"
    assert json.loads((run / "summary.json").read_text())["epochs"] == 1


@pytest.mark.slow
def test_resume_is_bitwise_exact_under_torch_compile(tiny_cifar: Path, tmp_path: Path) -> None:
    """Compiled kernels (and their dropout RNG) reproduce a run across a stop in the middle of an epoch."""
    changes = dict(compile=True, drop_rate=0.3, epochs=1)
    train(_recipe(tiny_cifar, **changes), RunOptions(output=tmp_path / "straight"))
    with preempted_after(2):
        train(_recipe(tiny_cifar, **changes), RunOptions(output=tmp_path / "split"))
    train(_recipe(tiny_cifar, **changes), RunOptions(output=tmp_path / "split", resume="auto"))
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
