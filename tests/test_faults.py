"""Faults injected into real CLI runs: a full disk and a folder turned read-only while a checkpoint is written,
SIGTERM during evaluation, during a checkpoint write and while a loader worker hangs, a loader worker killed,
kill -9 at random moments. Each run ends within seconds, its last state intact, and resumes to the weights of
an uninterrupted run.

Run as a script, this file is the launcher (`python tests/test_faults.py train ...`): it registers the test
models and calls the `visionzoo` CLI with the fault VISIONZOO_TEST_FAULT="NAME:N" installed (see `FAULTS`);
a fault that fires touches the file VISIONZOO_TEST_MARKER. The faults live here, not in the library.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import processes
import pytest
import torch
from conftest import make_tiny_cifar
from safetensors.torch import load_file

from visionzoo.cli import main

FAULT_ENV, MARKER_ENV = "VISIONZOO_TEST_FAULT", "VISIONZOO_TEST_MARKER"
# 80 training images, batch 16: 5 steps an epoch, 10 in all; a state every 2 steps; the lr varies per step.
SETTINGS = [
    "--model", "tiny_test_net", "--epochs", "2", "-b", "16", "--lr", "0.05", "--sched", "cosine",
    "--warmup-epochs", "0.5", "--seed", "3", "--amp", "off", "--save-every-steps", "2",
]  # fmt: skip
STOP_WITHIN_S = 30  # what "within seconds" is allowed to mean on two shared cores (a worker is joined 5 s first)


def _cli_args(data: Path, run_dir: Path, workers: int = 0) -> list[str]:
    where = ["--data", str(data), "--output", str(run_dir), "-j", str(workers)]
    return ["train", "cspdarknet53_cifar10", *where, *SETTINGS]


def _env(fault: str, marker: Path) -> dict[str, str]:
    return os.environ | {FAULT_ENV: fault, MARKER_ENV: str(marker), "CUDA_VISIBLE_DEVICES": ""}


def _launch(args: list[str]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "last.safetensors"))


def _same_weights(a: Path, b: Path) -> bool:
    first, second = _weights(a), _weights(b)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def _resume(data: Path, run_dir: Path) -> None:
    assert main([*_cli_args(data, run_dir), "--resume", "auto"]) == 0
    assert [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def _state(run_dir: Path) -> dict[str, Any]:
    return torch.load(run_dir / "last.state.pt", weights_only=True)


def _leftovers(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_cifar(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="module")
def straight(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run every faulty one must end like."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    assert main(_cli_args(data, run_dir)) == 0
    return run_dir


@pytest.mark.parametrize(
    ("fault", "workers", "code", "says"),
    [
        ("sigterm-in-eval:1", 0, 3, "stopped at epoch 1 step 5"),
        ("sigterm-in-save:2", 0, 3, "stopped at epoch 1 step 4"),
        ("disk-full-in-save:2", 0, 2, "last.state.pt: cannot write it (File too large)"),
        ("read-only-after-step:3", 0, 2, "last.state.pt: cannot write it (Permission denied)"),
        ("kill-worker:72", 1, 2, "visionzoo: error: a data loader worker died ("),
    ],
    ids=["sigterm-in-eval", "sigterm-in-save", "disk-full-in-save", "read-only-after-step", "kill-worker"],
)
def test_fault_ends_the_run_cleanly_and_it_resumes_exactly(
    data: Path, straight: Path, tmp_path: Path, fault: str, workers: int, code: int, says: str
) -> None:
    run_dir, marker = tmp_path / "run", tmp_path / "fired"
    command = _launch(_cli_args(data, run_dir, workers))
    if fault.startswith("read-only") and os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root writes into read-only folders; setpriv is needed to drop that power")
        command = ["setpriv", "--bounding-set", "-dac_override", *command]
    started = time.monotonic()
    result = processes.run(command, tmp_path, _env(fault, marker))
    assert marker.exists(), f"the fault {fault} never fired"
    assert result.returncode == code and says in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if "error:" in line]) == (code == 2)
    assert time.monotonic() - started < processes.TIMEOUT_S
    run_dir.chmod(0o755)
    assert _leftovers(run_dir) == []
    _state(run_dir)  # complete and loadable
    _resume(data, run_dir)
    assert _same_weights(run_dir, straight)


@pytest.mark.slow  # a worker is given 5 s to finish before it is terminated: about 10 s
def test_sigterm_ends_a_run_whose_loader_worker_hangs(data: Path, straight: Path, tmp_path: Path) -> None:
    """The worker never returns its batch; SIGTERM to the training process still saves and ends everything."""
    run_dir, marker = tmp_path / "run", tmp_path / "fired"
    command = _launch(_cli_args(data, run_dir, workers=1))
    with processes.started(command, tmp_path, _env("hang-worker:40", marker)) as process:
        deadline = time.monotonic() + processes.TIMEOUT_S
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), process.communicate()[1][-3000:]
        time.sleep(1.0)  # the training process is now waiting for the batch that never comes
        os.kill(process.pid, signal.SIGTERM)
        stopped = time.monotonic()
        _, stderr = process.communicate(timeout=processes.TIMEOUT_S)
        assert process.returncode == 3, stderr[-3000:]
        assert time.monotonic() - stopped < STOP_WITHIN_S
        assert processes.session_ends(process.pid, STOP_WITHIN_S), "a loader worker outlived the run"
    assert "stopped at epoch 1 step 2" in stderr and _state(run_dir)["epoch_step"] == 2
    _resume(data, run_dir)
    assert _same_weights(run_dir, straight)


def _train_in_child(argv: list[str]) -> None:
    torch.set_num_threads(1)  # a forked process must not use the parent's thread pool
    os._exit(main(argv))


def _start_training(run_dir: Path, data: Path) -> tuple[multiprocessing.process.BaseProcess, list[str]]:
    """A run with a state saved at every step, in a forked process; returned once it trains (metrics.jsonl
    is written just before the first step)."""
    args = [*_cli_args(data, run_dir), "--save-every-steps", "1"]
    child = multiprocessing.get_context("fork").Process(target=_train_in_child, args=(args,))
    child.start()
    while not (run_dir / "metrics.jsonl").exists() and child.is_alive():
        time.sleep(0.001)
    return child, args


@pytest.mark.slow  # 21 short runs and 20 resumes: about 15 s on two shared cores
@pytest.mark.usefixtures("one_thread")  # the resumes run here, the runs in forked one-thread children: same kernels
def test_kill_9_at_20_random_moments_always_resumes_to_the_same_weights(data: Path, tmp_path: Path) -> None:
    """SIGKILL at moments drawn uniformly over the training of a short run (a state at every step, so many land
    in a checkpoint write); each killed run is resumed to its end and must hold the uninterrupted run's weights."""
    child, _ = _start_training(tmp_path / "straight", data)
    started = time.monotonic()
    while not (tmp_path / "straight" / "summary.json").exists() and child.is_alive():
        time.sleep(0.001)
    window = time.monotonic() - started
    child.join()
    assert child.exitcode == 0

    moments, rng = 20, random.Random(13)
    exact, mid_run = 0, 0
    for attempt in range(moments):
        run_dir = tmp_path / f"killed-{attempt}"
        child, args = _start_training(run_dir, data)
        time.sleep(rng.uniform(0.0, window))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        mid_run += not (run_dir / "summary.json").exists()
        assert main([*args, "--resume", "auto"]) == 0
        exact += _same_weights(run_dir, tmp_path / "straight")
        assert _leftovers(run_dir) == []
    assert exact == moments, f"{exact} of {moments} killed runs resumed to the same weights"
    assert mid_run >= moments // 2, f"only {mid_run} of {moments} kills came before the run's end"


# ------------------------------------------------------------------------------------------- the launcher


def _on_call(owner: Any, name: str, n: int, action: Callable[[], None]) -> None:
    """Run `action` just before the `n`-th call of `owner.name` in this process."""
    original, calls = getattr(owner, name), 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == n:
            Path(os.environ[MARKER_ENV]).touch()
            action()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def _in_worker(action: Callable[[], None]) -> Callable[[], None]:
    def act() -> None:
        if torch.utils.data.get_worker_info() is not None:
            action()

    return act


def _install_fault(plan: str) -> None:
    from visionzoo.data.cifar10 import Cifar10
    from visionzoo.engine import checkpoint
    from visionzoo.tasks.classification import ClassificationTask

    name, n = plan.split(":")
    output = Path(sys.argv[sys.argv.index("--output") + 1])
    faults = {
        "sigterm-in-eval": (ClassificationTask, "eval_step", lambda: os.kill(os.getpid(), signal.SIGTERM)),
        "sigterm-in-save": (checkpoint, "save_state", lambda: os.kill(os.getpid(), signal.SIGTERM)),
        "disk-full-in-save": (
            checkpoint,
            "save_state",
            lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY)),
        ),
        "read-only-after-step": (ClassificationTask, "train_step", lambda: output.chmod(0o555)),
        "kill-worker": (Cifar10, "__getitem__", _in_worker(lambda: os.kill(os.getpid(), signal.SIGKILL))),
        "hang-worker": (Cifar10, "__getitem__", _in_worker(lambda: time.sleep(3600))),
    }
    owner, attribute, action = faults[name]
    _on_call(owner, attribute, int(n), action)


if __name__ == "__main__":
    if os.environ.get(FAULT_ENV):
        _install_fault(os.environ[FAULT_ENV])
    sys.exit(main(sys.argv[1:]))
