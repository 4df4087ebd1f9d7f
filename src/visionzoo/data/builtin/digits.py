"""The built-in default data: scikit-learn's 1,797 handwritten digits written as a CIFAR-10 dataset.

Real images, bundled with scikit-learn, no network: 8x8 grey digits upscaled to 32x32 RGB, a fixed
stratified split (1,497 train / 300 test), stored in exactly the CIFAR-10 python format so the same
loader reads it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from visionzoo.data.cache import cache_dir
from visionzoo.data.cifar10 import META_FILE, TEST_FILE, TRAIN_FILES, write_batch
from visionzoo.files import building_dir

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEST_PER_CLASS = 30


def _images_and_labels() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = []
    for image in digits.images:  # values 0..16
        grey = Image.fromarray((image * (255.0 / 16.0)).astype(np.uint8)).resize((32, 32), Image.BILINEAR)
        rgb = np.repeat(np.asarray(grey)[None], 3, axis=0)  # CIFAR row layout: R plane, G plane, B plane
        rows.append(rgb.reshape(-1))
    return np.stack(rows).astype(np.uint8), digits.target.astype(np.int64)


def make_digits(out: Path) -> Path:
    """Write the digits dataset into `out` (atomically: built beside it, then renamed)."""
    data, labels = _images_and_labels()
    order = np.random.default_rng(0).permutation(len(labels))
    test = np.concatenate([order[labels[order] == c][:TEST_PER_CLASS] for c in range(10)])
    train = np.setdiff1d(order, test, assume_unique=True)
    train = order[np.isin(order, train)]  # keep the shuffled order
    with building_dir(out, META_FILE) as tmp:
        for name, chunk in zip(TRAIN_FILES, np.array_split(train, len(TRAIN_FILES)), strict=True):
            write_batch(tmp / name, {"batch_label": name, "labels": labels[chunk].tolist(), "data": data[chunk]})
        test = np.sort(test)
        write_batch(tmp / TEST_FILE, {"batch_label": TEST_FILE, "labels": labels[test].tolist(), "data": data[test]})
        write_batch(tmp / META_FILE, {"label_names": CLASS_NAMES, "num_cases_per_batch": 300, "num_vis": 3072})
    return out


def digits_dir(make: bool = True) -> Path:
    """The digits dataset in the cache folder, made on first use (`make=False`: only where it would be)."""
    path = cache_dir() / "digits-cifar10"
    if make and not (path / META_FILE).exists():
        make_digits(path)
    return path
