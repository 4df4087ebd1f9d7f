"""torchrun on CPU (gloo): 2 processes equal 1 process of twice the batch; faults lose no training.

This file is also the launcher torchrun runs (`python -m torch.distributed.run ... tests/test_distributed.py
train ...`): run as a script it registers the test models and calls the `visionzoo` CLI, and with
VISIONZOO_TEST_FAULT="SIGNAL:RANK:STEPS" that rank sends itself SIGNAL once it has trained STEPS steps,
on torchrun's first attempt only. The fault lives here, not in the library.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import processes
import pytest
import torch
import torch.nn as nn
import yaml
from conftest import TinyNet, make_tiny_cifar, preempted_after
from numerics import FP32, normwise_error
from safetensors.torch import load_file

from visionzoo.engine.rng import seed_everything
from visionzoo.engine.run_dir import RunOptions, resolve_run_dir
from visionzoo.engine.trainer import train
from visionzoo.errors import VisionZooError
from visionzoo.models import ModelCfg, create_model, is_model, register_model
from visionzoo.recipes import get_recipe

FAULT_ENV = "VISIONZOO_TEST_FAULT"
RECIPE = "cspdarknet53_cifar10"
# 80 training images, global batch 16: 5 steps an epoch, 10 in all; cosine with warm-up so the lr varies per step.
SETTINGS: dict[str, Any] = dict(
    model="tiny_test_net_nobn", epochs=2, workers=0, lr=0.05, sched="cosine", warmup_epochs=0.5, seed=3, amp="off"
)

if not is_model("tiny_test_net_nobn"):

    @register_model(ModelCfg(classifier="fc"))
    def tiny_test_net_nobn(**kwargs: Any) -> TinyNet:
        """TinyNet without BatchNorm: per-rank batch statistics would make 2 x b differ from 1 x 2b on CPU,
        where PyTorch has no SyncBatchNorm."""
        model = TinyNet(**kwargs)
        model.features[1] = nn.Identity()
        return model


def _recipe(data: Path, **changes: Any):
    return get_recipe(RECIPE).replace(**(SETTINGS | {"data": str(data)} | changes))


def _cli_args(data: Path, **changes: Any) -> list[str]:
    values = SETTINGS | {"data": str(data)} | changes
    return [item for key, value in values.items() for item in (f"--{key.replace('_', '-')}", str(value))]


def _launcher_command(nproc: int | None, args: list[str], max_restarts: int = 0) -> list[str]:
    script = [str(Path(__file__).resolve()), "train", RECIPE, *args]
    if nproc is None:
        return [sys.executable, *script]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return [*torchrun, f"--max-restarts={max_restarts}", *script]


def _run(command: list[str], cwd: Path, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run in a session of its own, so that a hang ends with all its workers killed, not orphaned."""
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV} | ({FAULT_ENV: fault} if fault else {})
    return processes.run(command, cwd, env)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "last.safetensors"))


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest norm-wise relative difference over the tensors of two state dicts."""
    assert a.keys() == b.keys()
    return max(normwise_error(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_cifar(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="module")
def one_process(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 process x batch 16, uninterrupted: the reference."""
    run_dir = tmp_path_factory.mktemp("one") / "run"
    train(_recipe(data, batch_size=16), RunOptions(output=run_dir))
    return run_dir


@pytest.fixture(scope="module")
def two_processes(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 processes x batch 8 under torchrun, uninterrupted."""
    run_dir = tmp_path_factory.mktemp("two") / "run"
    result = _run(_launcher_command(2, [*_cli_args(data, batch_size=8), "--output", str(run_dir)]), run_dir.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.numerics
def test_two_processes_equal_one_process_of_twice_the_batch(one_process: Path, two_processes: Path) -> None:
    seed_everything(SETTINGS["seed"])
    initial = {k: v.detach() for k, v in create_model(SETTINGS["model"], num_classes=10).state_dict().items()}
    single, double = _weights(one_process), _weights(two_processes)
    assert _max_difference(single, initial) > 1e-2, "training did not move the weights; the comparison means nothing"
    assert _max_difference(single, double) <= FP32  # the gradients are summed in another order, nothing else

    config = yaml.safe_load((two_processes / "config.yaml").read_text())
    assert (config["batch_size"], config["world_size"], config["global_batch_size"]) == (8, 2, 16)
    assert config["lr_effective"] == yaml.safe_load((one_process / "config.yaml").read_text())["lr_effective"]
    for a, b in zip(_metrics(one_process), _metrics(two_processes), strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)
        assert b["eval_images"] == a["eval_images"] == 32  # the whole validation set, each image once
        assert b["top1"] == a["top1"]


@pytest.mark.slow  # two torchrun attempts: about 25 s on two shared cores
def test_killed_worker_is_restarted_and_the_run_resumes_exactly(data: Path, two_processes: Path, tmp_path: Path):
    """Rank 1 is SIGKILLed after 7 of 10 steps (checkpoints every 2): torchrun restarts both ranks, which find
    the job's default run directory and continue from step 6, mid-epoch, to the uninterrupted weights."""
    args = [*_cli_args(data, batch_size=8), "--save-every-steps", "2"]
    result = _run(_launcher_command(2, args, max_restarts=1), tmp_path, fault="SIGKILL:1:7")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed" in result.stderr and "epoch 2, step 1 of 5" in result.stderr, result.stderr[-3000:]

    (run_dir,) = (tmp_path / "runs" / RECIPE).iterdir()  # both attempts used one directory
    assert run_dir.name.endswith(yaml.safe_load((run_dir / "config.yaml").read_text())["torchelastic_run_id"])
    assert _max_difference(_weights(run_dir), _weights(two_processes)) == 0.0
    resumed, straight = _metrics(run_dir), _metrics(two_processes)
    assert [r["epoch"] for r in resumed] == [1, 2]
    assert resumed[-1]["train_loss"] == pytest.approx(straight[-1]["train_loss"], abs=1e-6)


def test_sigterm_saves_mid_epoch_and_the_resumed_run_matches(data: Path, one_process: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = [*_cli_args(data, batch_size=16), "--save-every-steps", "2", "--output", str(run_dir)]
    result = _run(_launcher_command(None, args), tmp_path, fault="SIGTERM:0:2")
    assert result.returncode == 3, result.stderr[-3000:]  # the CLI's code for "stopped, state saved"
    state = torch.load(run_dir / "last.state.pt", weights_only=True)
    assert (state["epoch"], state["epoch_step"]) == (0, 3)  # saved on SIGTERM, not by --save-every-steps 2

    train(_recipe(data, batch_size=16, save_every_steps=2), RunOptions(output=run_dir, resume="auto"))
    assert _max_difference(_weights(run_dir), _weights(one_process)) == 0.0


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _swap_in_another_model(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["model"]["fc.weight"] = torch.zeros(5, 16)  # a 5-class head: same model name, weights that do not fit
    torch.save(state, path)


@pytest.mark.parametrize(("spoil", "reason"), [(_truncate, "cannot resume"), (_swap_in_another_model, "do not fit")])
def test_unusable_last_state_is_reported_and_the_previous_one_used(
    data: Path, one_process: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, spoil: Any, reason: str
) -> None:
    run_dir, recipe = tmp_path / "run", _recipe(data, batch_size=16, save_every_steps=2)
    with preempted_after(7):  # states at steps 6 (prev) and 7 (last)
        train(recipe, RunOptions(output=run_dir))
    spoil(run_dir / "last.state.pt")
    with caplog.at_level(logging.INFO, logger="visionzoo"):
        train(recipe, RunOptions(output=run_dir, resume="auto"))
    err = caplog.text
    assert reason in err and "previous checkpoint" in err and "epoch 2, step 1 of 5" in err
    assert _max_difference(_weights(run_dir), _weights(one_process)) == 0.0


def test_a_restart_continues_only_its_own_job(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchrun restarts with the same arguments: `--output` is resumed when this job trained there, and a
    directory of another job still needs `--resume auto`."""
    run_dir, recipe = tmp_path / "run", _recipe(data, batch_size=16, epochs=1)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-1")
    train(recipe, RunOptions(output=run_dir))
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert resolve_run_dir(recipe, RunOptions(output=run_dir)) == (run_dir, run_dir)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-2")
    with pytest.raises(VisionZooError, match="already holds a run"):
        resolve_run_dir(recipe, RunOptions(output=run_dir))
    assert resolve_run_dir(recipe, RunOptions(output=run_dir, resume="auto")) == (run_dir, run_dir)


def _install_fault(plan: str) -> None:
    """SIGNAL:RANK:STEPS -> that rank signals itself before its training step STEPS + 1, first attempt only."""
    name, rank, steps = plan.split(":")
    if os.environ.get("RANK", "0") != rank or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return
    from visionzoo.tasks.classification import ClassificationTask

    original, calls = ClassificationTask.train_step, 0

    def train_step(self: ClassificationTask, model: nn.Module, batch: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == int(steps) + 1:
            os.kill(os.getpid(), getattr(signal, name))
        return original(self, model, batch)

    ClassificationTask.train_step = train_step


if __name__ == "__main__":
    from visionzoo.cli import main

    if os.environ.get(FAULT_ENV):
        _install_fault(os.environ[FAULT_ENV])
    sys.exit(main(sys.argv[1:]))
