"""CIFAR-10 python batches that are wrong inside: labels, image arrays, pickles."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from conftest import make_tiny_cifar

from hostile import Hostile, hostile, train_cifar
from visionzoo.data.cifar10 import TRAIN_FILES, write_batch

IMAGES = np.zeros((16, 3072), np.uint8)


def _with_batch(folder: Path, batch: dict, name: str = TRAIN_FILES[0]) -> Path:
    data = make_tiny_cifar(folder / "cifar")
    write_batch(data / name, batch)
    return data


@hostile("cifar-labels-scalar")
def labels_scalar(folder: Path) -> Hostile:
    data = _with_batch(folder, {"data": IMAGES, "labels": 3})
    return Hostile(train_cifar(data, folder / "run"), error="data_batch_1: 'labels' must be a list of 16 class indices")


@hostile("cifar-labels-missing")
def labels_missing(folder: Path) -> Hostile:
    data = _with_batch(folder, {"data": IMAGES})
    return Hostile(train_cifar(data, folder / "run"), error="data_batch_1: no 'labels'")


@hostile("cifar-labels-strings")
def labels_strings(folder: Path) -> Hostile:
    data = _with_batch(folder, {"data": IMAGES, "labels": ["cat"] * 16})
    return Hostile(train_cifar(data, folder / "run"), error="data_batch_1: 'labels' must be integers")


@hostile("cifar-labels-fractions")
def labels_fractions(folder: Path) -> Hostile:
    data = _with_batch(folder, {"data": IMAGES, "labels": [0.5] * 16})
    return Hostile(train_cifar(data, folder / "run"), error="data_batch_1: 'labels' must be integers")


@hostile("cifar-labels-too-few")
def labels_too_few(folder: Path) -> Hostile:
    data = _with_batch(folder, {"data": IMAGES, "labels": [1] * 15})
    return Hostile(train_cifar(data, folder / "run"), error="data_batch_1: 15 labels for 16 images")


@hostile("cifar-labels-out-of-range")
def labels_out_of_range(folder: Path) -> Hostile:
    data = _with_batch(folder, {"data": IMAGES, "labels": [10] * 16})
    return Hostile(train_cifar(data, folder / "run"), error="data_batch_1: labels outside 0..9")


@hostile("cifar-all-train-batches-empty")
def all_train_batches_empty(folder: Path) -> Hostile:
    data = make_tiny_cifar(folder / "cifar")
    for name in TRAIN_FILES:
        write_batch(data / name, {"data": np.zeros((0, 3072), np.uint8)})
    return Hostile(train_cifar(data, folder / "run"), error="data_batch_1: holds no images")


@hostile("cifar-empty-arrays-protocol-2")
def empty_arrays_protocol_2(folder: Path) -> Hostile:
    """numpy's own protocol-2 pickle of an empty array references builtins' bytes: read, then said to be empty."""
    data = _with_batch(folder, {"data": np.zeros((0, 3072), np.uint8), "labels": []}, name="test_batch")
    return Hostile(train_cifar(data, folder / "run"), error="test_batch: holds no images")


@hostile("cifar-float-images")
def float_images(folder: Path) -> Hostile:
    data = _with_batch(folder, {"data": IMAGES.astype(np.float32), "labels": [0] * 16})
    return Hostile(
        train_cifar(data, folder / "run"), error="'data' must be a uint8 array of shape [N, 3072], got float32"
    )


class _HugeBytes:
    """Unpickles as bytes(10**12): a terabyte allocation if the unpickler called the bytes type with anything."""

    def __reduce__(self):
        return (bytes, (10**12,))


@hostile("cifar-bytes-of-a-terabyte")
def bytes_of_a_terabyte(folder: Path) -> Hostile:
    data = make_tiny_cifar(folder / "cifar")
    with open(data / TRAIN_FILES[0], "wb") as handle:
        pickle.dump({"data": _HugeBytes(), "labels": [0]}, handle, protocol=2)
    return Hostile(train_cifar(data, folder / "run"), error="data_batch_1: refused")


@hostile("cifar-labels-beyond-int64")
def labels_beyond_int64(folder: Path) -> Hostile:
    data = _with_batch(folder, {"data": IMAGES, "labels": [2**70] * 16})
    return Hostile(train_cifar(data, folder / "run"), error="data_batch_1: labels outside 0..9")
