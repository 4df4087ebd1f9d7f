"""Paths that are not what they are named: pipes named like data files, folders that loop, errors in workers."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import make_tiny_cifar

from hostile import Hostile, Outcome, hostile, train_cifar, train_folder
from visionzoo.data.builtin.anet_demo import make_anet_demo
from visionzoo.data.builtin.imagefolder_demo import make_imagefolder


@hostile("activitynet-feature-file-is-a-fifo")
def feature_file_is_a_fifo(folder: Path) -> Hostile:
    data = make_anet_demo(folder / "anet", videos=8, temporal_scale=16, feat_dim=8)
    victim = sorted((data / "csv_mean_100").iterdir())[0]
    victim.unlink()
    os.mkfifo(victim)
    argv = [
        "train", "bmn_anet", "--data", str(data), "--temporal-scale", "16", "--feat-dim", "8", "--epochs", "1",
        "-b", "2", "-j", "0", "--amp", "off", "--output", str(folder / "run"),
    ]  # fmt: skip
    return Hostile(argv, error=f"{victim}: not a regular file (a pipe, socket or device), expected a feature file")


@hostile("resume-from-a-fifo")
def resume_from_a_fifo(folder: Path) -> Hostile:
    state = folder / "state.pt"
    os.mkfifo(state)
    argv = train_cifar(make_tiny_cifar(folder / "cifar"), folder / "run", "--resume", str(state))
    return Hostile(argv, error=f"{state}: not a regular file (a pipe, socket or device), expected a state file")


@hostile("strict-data-error-in-a-loader-worker")
def strict_data_error_in_a_loader_worker(folder: Path) -> Hostile:
    """An error raised in a worker process reaches the main process inside a traceback's text: still one line."""
    root = make_imagefolder(folder / "images", classes=3, per_class=4, size=40, val_per_class=2)
    broken = sorted((root / "train").rglob("*00003.JPEG"))[0]
    broken.write_bytes(b"not an image")
    argv = train_folder(root, folder / "run", "--strict-data", "-j", "1")
    return Hostile(argv, error=f"visionzoo: error: {broken}: unreadable image (UnidentifiedImageError", mid_run=True)


@hostile("predict-on-a-folder-that-loops")
def predict_on_a_folder_that_loops(folder: Path) -> Hostile:
    """`predict` walks folders as training does: each image once, pipes ignored, links followed, no loop."""
    root = make_imagefolder(folder / "images", classes=3, per_class=2, size=40, val_per_class=1)
    images = root / "val"
    os.symlink("..", images / sorted(os.listdir(images))[0] / "up")
    os.mkfifo(images / "pipe.jpg")

    def check(outcome: Outcome) -> None:
        assert len(outcome.out.strip().splitlines()) == 3, outcome.out  # the 3 val images, once each

    return Hostile(["predict", "tiny_test_net", str(images), "--checkpoint", str(_weights(folder))], check=check)


def _weights(folder: Path) -> Path:
    from safetensors.torch import save_file

    from visionzoo.models import create_model

    path = folder / "tiny.safetensors"
    save_file(create_model("tiny_test_net", num_classes=10).state_dict(), str(path))
    return path
