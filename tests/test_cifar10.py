from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from visionzoo.data.builtin.digits import make_digits
from visionzoo.data.cifar10 import TEST_FILE, TRAIN_FILES, Cifar10, read_batch
from visionzoo.errors import VisionZooError


class _Exploit:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_its_code_never_runs(tiny_cifar: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with open(tiny_cifar / TRAIN_FILES[0], "wb") as handle:
        pickle.dump({"data": _Exploit(marker), "labels": [0]}, handle, protocol=2)
    with pytest.raises(VisionZooError, match=r"data_batch_1: refused, it references (posix|os)\.system"):
        Cifar10(tiny_cifar, train=True)
    assert not marker.exists()


def test_wrong_shape_names_the_file(tiny_cifar: Path) -> None:
    with open(tiny_cifar / TEST_FILE, "wb") as handle:
        pickle.dump({"data": np.zeros((4, 1000), np.uint8), "labels": [0, 1, 2, 3]}, handle, protocol=2)
    with pytest.raises(VisionZooError, match=r"test_batch: 'data' must be a uint8 array of shape \[N, 3072\]"):
        Cifar10(tiny_cifar, train=False)


def test_truncated_file_is_a_clear_error(tiny_cifar: Path) -> None:
    path = tiny_cifar / TEST_FILE
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(VisionZooError, match="test_batch: not a CIFAR-10 python batch"):
        read_batch(path)


def test_digits_are_written_in_the_cifar_format(tmp_path: Path) -> None:
    root = make_digits(tmp_path / "digits")
    train, test = Cifar10(root, train=True), Cifar10(root, train=False)
    assert (len(train), len(test)) == (1497, 300)
    assert np.bincount(test.labels).tolist() == [30] * 10
    assert train.images.shape[1:] == (32, 32, 3) and train.images.dtype == np.uint8
    assert train.class_names[3] == "three"
    raw = read_batch(root / TRAIN_FILES[0])  # the very layout CIFAR-10 uses: rows of R, G, B planes
    assert raw["data"].shape[1] == 3072 and isinstance(raw["labels"], list)
    # digits are grey: the three planes are equal
    assert np.array_equal(raw["data"][:, :1024], raw["data"][:, 1024:2048])


def test_augmentation_depends_only_on_seed_epoch_and_index(tiny_cifar: Path) -> None:
    data = Cifar10(tiny_cifar, train=True, seed=3)
    again = Cifar10(tiny_cifar, train=True, seed=3)
    first, _ = data[(5, 0)]
    assert first.shape == (3, 32, 32)
    assert np.array_equal(first.numpy(), again[(5, 0)][0].numpy())
    differs = [not np.array_equal(data[(i, 0)][0].numpy(), data[(i, 1)][0].numpy()) for i in range(16)]
    assert any(differs)
    evaluation = Cifar10(tiny_cifar, train=False)
    assert np.array_equal(evaluation[(0, 0)][0].numpy(), evaluation.images[0].transpose(2, 0, 1))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_pickles_of_every_protocol_are_read(tmp_path: Path, protocol: int) -> None:
    """Protocols 0-2 store b"" as a call of bytes() (empty arrays, empty strings): admitted, nothing else is."""
    batch = {"data": np.arange(6, dtype=np.uint8).reshape(2, 3), "empty": np.zeros((0, 3072), np.uint8), "b": b""}
    path = tmp_path / "batch"
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=protocol)
    read = read_batch(path)
    assert np.array_equal(read["data"], batch["data"]) and read["empty"].shape == (0, 3072) and read["b"] == b""


def test_bytes_called_with_an_argument_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    path.write_bytes(b"c__builtin__\nbytes\n(I1000000000000\ntR.")  # bytes(10**12): a terabyte of zeros
    with pytest.raises(VisionZooError, match="refused, it calls bytes with arguments"):
        read_batch(path)
