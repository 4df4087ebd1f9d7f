"""CIFAR-10 in its original python format, read without ever running code from the files.

The batches are pickles; a restricted unpickler admits only plain containers, strings, bytes and numpy
arrays, so a file crafted to execute code on unpickling is refused before anything runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from visionzoo.data.sampling import SampleKey, sample_rng
from visionzoo.data.transforms import random_pad_crop
from visionzoo.errors import VisionZooError
from visionzoo.files import write_bytes

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE, META_FILE = "test_batch", "batches.meta"
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
}
_EMPTY_BYTES = {("__builtin__", "bytes"), ("builtins", "bytes")}  # protocol <= 2 writes b"" as a call of bytes()


class _Refused(pickle.UnpicklingError):
    """The file names a global outside the allow-list; raised before that global is ever looked up."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if (module, name) in _EMPTY_BYTES:
            return _empty_bytes
        raise _Refused(f"it references {module}.{name}")


def _empty_bytes(*args: Any) -> bytes:
    """bytes() as empty arrays pickle it; any argument (bytes(10**12) allocates a terabyte) is refused."""
    if args:
        raise _Refused(f"it calls bytes with arguments {args!r:.40}")
    return b""


def read_batch(path: Path) -> dict[str, Any]:
    """One CIFAR pickle as a dict with str keys; anything but plain data is refused."""
    if not path.is_file():
        raise VisionZooError(f"{path}: missing CIFAR-10 file")
    try:
        with open(path, "rb") as handle:
            obj = _RestrictedUnpickler(handle, encoding="latin1").load()
    except _Refused as err:
        raise VisionZooError(
            f"{path}: refused, {err} (only plain containers, strings and numpy arrays are allowed)"
        ) from None
    except Exception as err:  # noqa: BLE001 - truncated or foreign files
        raise VisionZooError(f"{path}: not a CIFAR-10 python batch ({type(err).__name__}: {err})") from None
    if not isinstance(obj, dict):
        raise VisionZooError(f"{path}: not a CIFAR-10 python batch (a {type(obj).__name__}, not a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_class_names(root: Path) -> list[str]:
    """The class names of batches.meta, in label order."""
    meta = read_batch(root / META_FILE)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", [])]
    if not names:
        raise VisionZooError(f"{root / META_FILE}: no label_names")
    return names


def load_split(root: Path, files: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images [N, 32, 32, 3] uint8, labels [N] int64, class names, validated file by file."""
    names = read_class_names(root)
    images, labels = [], []
    for name in files:
        batch = read_batch(root / name)
        data = batch.get("data")
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
            found = f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
            raise VisionZooError(f"{root / name}: 'data' must be a uint8 array of shape [N, 3072], got {found}")
        if len(data) == 0:
            raise VisionZooError(f"{root / name}: holds no images ('data' is empty)")
        labels.append(_labels(root / name, batch.get("labels", batch.get("fine_labels")), len(data), len(names)))
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), names


def _labels(path: Path, value: object, count: int, classes: int) -> np.ndarray:
    """A batch's labels as int64 [count] in 0..classes-1, or one error saying what is wrong with them."""
    if value is None:
        raise VisionZooError(f"{path}: no 'labels' (one class index per image)")
    if not isinstance(value, list | tuple | np.ndarray) or np.ndim(value) != 1:
        raise VisionZooError(f"{path}: 'labels' must be a list of {count} class indices, got {type(value).__name__}")
    array = np.asarray(value)
    wrong = next((v for v in value if not isinstance(v, int | np.integer) or isinstance(v, bool | np.bool_)), None)
    if wrong is not None:
        raise VisionZooError(f"{path}: 'labels' must be integers (class indices), got {wrong!r}")
    if len(array) != count:
        raise VisionZooError(f"{path}: {len(array)} labels for {count} images")
    if any(not 0 <= int(label) < classes for label in array):  # Python ints: no overflow on hostile values
        raise VisionZooError(f"{path}: labels outside 0..{classes - 1}")
    return array.astype(np.int64)


class Cifar10(Dataset):
    """Items are (uint8 tensor [3, 32, 32], label); training adds a padded random crop and a flip."""

    def __init__(self, root: Path, train: bool, seed: int = 0, padding: int = 4, hflip: float = 0.5) -> None:
        if not root.is_dir():
            raise VisionZooError(f"--data {root}: no such directory (expected CIFAR-10 python batches)")
        self.images, self.labels, self.class_names = load_split(root, TRAIN_FILES if train else (TEST_FILE,))
        self.train, self.seed, self.padding, self.hflip = train, seed, padding, hflip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, int]:
        index, epoch = key
        image = self.images[index]
        if self.train:
            rng = sample_rng(self.seed, epoch, index)
            if self.padding:
                image = random_pad_crop(image, self.padding, rng)
            if rng.random() < self.hflip:
                image = image[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), int(self.labels[index])


def write_batch(path: Path, obj: dict[str, Any]) -> None:
    """Write one batch in the CIFAR-10 python format (used to make datasets in that format)."""
    write_bytes(path, pickle.dumps(obj, protocol=2))
