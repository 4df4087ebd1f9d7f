"""A complete last.state.pt at every moment of a save; leftovers of killed writes removed at the next start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_cifar

from visionzoo.cli import main
from visionzoo.engine import checkpoint

# what every state holds besides its payload (checkpoint.StateHeader): a state without it cannot be resumed
HEADER = {"format": checkpoint.STATE_FORMAT, "config": {"model": "m", "batch_size": 1}, "world_size": 1, "model": {}}


def test_a_complete_last_state_exists_at_every_step_of_a_save(tmp_path: Path, monkeypatch) -> None:
    last, previous = tmp_path / checkpoint.STATE_NAME, tmp_path / checkpoint.PREVIOUS_STATE_NAME
    states = [HEADER | {"step": i, "w": torch.full((1000,), float(i))} for i in range(3)]
    checkpoint.save_state(tmp_path, states[0])
    seen: list[int] = []
    real_replace, real_link = os.replace, os.link

    def look(*args: object) -> None:  # every rename and link of a save is a moment someone could be killed at
        seen.append(checkpoint.load_state(last)["step"])

    def replace(*args: object) -> None:
        look()
        real_replace(*args)
        look()

    def link(*args: object) -> None:
        look()
        real_link(*args)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", link)
    for state in states[1:]:
        checkpoint.save_state(tmp_path, state)
        assert checkpoint.load_state(previous)["step"] == state["step"] - 1
    assert checkpoint.load_state(last)["step"] == 2
    assert seen and set(seen) == {0, 1, 2}  # never missing, never partial
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint.STATE_NAME, checkpoint.PREVIOUS_STATE_NAME]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_leftovers_of_killed_writes_go_at_the_next_command_on_the_run(tmp_path: Path) -> None:
    data, run = make_tiny_cifar(tmp_path / "cifar"), tmp_path / "run"
    argv = ["--model", "tiny_test_net", "--data", str(data), "-j", "0", "--amp", "off"]
    assert main(["train", "cspdarknet53_cifar10", "--output", str(run), "--epochs", "1", "-b", "16", *argv]) == 0
    host = socket.gethostname().replace(".", "_")
    dead = run / f".last.state.pt.{host}.{_dead_pid()}.tmp"  # a writer of this machine that was killed
    live = run / f".last.state.pt.{host}.{os.getpid()}.tmp"  # a write in progress
    foreign_new, foreign_old = run / ".best.safetensors.node7.12.tmp", run / ".last.safetensors.node7.13.tmp"
    unrelated = run / "notes.tmp"
    for path in (dead, live, foreign_new, foreign_old, unrelated):
        path.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(foreign_old, (two_hours_ago, two_hours_ago))

    assert main(["eval", "cspdarknet53_cifar10", "--checkpoint", str(run / "last.safetensors"), *argv]) == 0
    assert not dead.exists() and not foreign_old.exists()
    assert live.exists() and foreign_new.exists() and unrelated.exists()


@pytest.mark.parametrize("link_works", [True, False], ids=["hard-link", "copy"])
def test_the_previous_state_is_kept_by_link_or_copy(tmp_path: Path, monkeypatch, link_works: bool) -> None:
    if not link_works:

        def no_links(*args: object) -> None:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_links)
    for step in range(2):
        checkpoint.save_state(tmp_path, HEADER | {"step": step})
    assert checkpoint.load_state(tmp_path / checkpoint.PREVIOUS_STATE_NAME)["step"] == 0
    assert checkpoint.load_state(tmp_path / checkpoint.STATE_NAME)["step"] == 1


@pytest.mark.parametrize("bad", [np.float64(0.5), np.int64(3), np.array([1.0]), {"auc": np.float32(1.0)}, object()])
def test_the_state_writer_refuses_what_a_resume_could_not_load(tmp_path: Path, bad: object) -> None:
    with pytest.raises(TypeError, match="which a resume cannot load"):
        checkpoint.save_state(tmp_path, {"format": checkpoint.STATE_FORMAT, "history": [{"metric": bad}]})
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_everything_the_state_writer_accepts_loads_with_weights_only(tmp_path: Path) -> None:
    state = HEADER | {"t": torch.ones(2), "n": [1, 2.5, "x", None, True, (3, b"b")],
             "dtype": torch.bfloat16, "size": torch.Size([2])}  # fmt: skip
    checkpoint.save_state(tmp_path, state)
    assert checkpoint.load_state(tmp_path / checkpoint.STATE_NAME)["n"] == [1, 2.5, "x", None, True, (3, b"b")]
