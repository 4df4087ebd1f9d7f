"""ImageNet-style image folders: decoding and augmentation with Pillow, plus a generated demo dataset.

Layouts of `root/<split>/` (a split folder is `train`, `val` or `validation`):

- class folders, `<split>/<class>/**/<image>` (torchvision ImageFolder; images may sit in sub-folders);
- flat, for val only: `<split>/<image>` with a label file named `<split>_labels.txt`, `<split>_labels.csv`,
  `LOC_<split>_solution.csv` or `<split>.txt`, looked for in `<split>/` and then in `root/`. One image per
  line, `filename label` or `filename,label`; the filename may omit its extension (as in Kaggle's
  LOC_val_solution.csv), only the first word of the label is read (so LOC's "n01751748 x y x y ..." works),
  a first line whose label is no class is taken as a header. A label is a class folder name of train, or
  else an integer read as a 0-based index in sorted class order (Caffe's val.txt convention).

Classes are the visible sub-folders sorted with plain `sorted()`, i.e. torchvision ImageFolder's indices.
timm sorts with a natural key ("class10" after "class9"), so checkpoints of timm folder-trained models may
number such classes differently. Hidden entries (".ipynb_checkpoints") are ignored. Image extensions are
matched case-insensitively.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from visionzoo.data.sampling import SampleKey, sample_rng
from visionzoo.data.transforms import MAX_IMAGE_PIXELS, EvalTransform, TrainTransform, open_image
from visionzoo.errors import VisionZooError
from visionzoo.files import directory_key, walk_files

logger = logging.getLogger(__name__)

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
LABEL_FILES = ("{split}_labels.txt", "{split}_labels.csv", "LOC_{split}_solution.csv", "{split}.txt")
VAL_SPLITS = ("val", "validation")


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS) and not name.startswith(".")


def find_classes(split_dir: Path) -> list[str]:
    """Visible sub-folders in plain `sorted()` order (torchvision ImageFolder, not timm's natural sort)."""
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def images_under_top(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and is_image_file(e.name))


def find_label_file(root: Path, split: str) -> Path | None:
    for folder in (root / split, root):
        for pattern in LABEL_FILES:
            if (folder / pattern.format(split=split)).is_file():
                return folder / pattern.format(split=split)
    return None


def read_label_file(path: Path, class_names: list[str]) -> dict[str, int]:
    """{filename or stem: class index} from `filename label` / `filename,label` lines (see module docstring)."""
    class_to_idx = {name: i for i, name in enumerate(class_names)}
    labels: dict[str, int] = {}
    first = True
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        is_first, first = first, False
        fields = line.split(",", 1) if "," in line else line.split(None, 1)
        words = fields[1].split() if len(fields) == 2 else []
        if not words:
            raise VisionZooError(f"{path}:{number}: expected 'filename label' or 'filename,label', got {line!r}")
        name, label = fields[0].strip(), words[0]
        if label in class_to_idx:
            labels[name] = class_to_idx[label]
        elif label.isdigit() and int(label) < len(class_names):
            labels[name] = int(label)
        elif is_first:
            continue  # a header such as "ImageId,PredictionString"
        else:
            raise VisionZooError(
                f"{path}:{number}: label {label!r} is neither a class folder of train "
                f"nor a class index 0..{len(class_names) - 1}"
            )
    return labels


def scan_split(root: Path, split: str, class_names: list[str] | None) -> tuple[list[str], list[str], list[int]]:
    """(class names, image paths relative to root/split, labels) for either layout; errors name the path."""
    split_dir = root / split
    if not split_dir.is_dir():
        raise VisionZooError(f"{split_dir}: no such directory (expected {split}/<class>/<images>)")
    folders = find_classes(split_dir)
    if folders:
        if class_names is not None and folders != class_names:
            only_here = sorted(set(folders) - set(class_names))
            only_train = sorted(set(class_names) - set(folders))
            raise VisionZooError(
                f"{split_dir}: class folders differ from train: only in {split}: {_few(only_here)}; "
                f"only in train: {_few(only_train)}"
            )
        paths, labels = [], []
        # links are followed, but no folder is entered twice: a link to a parent neither loops nor repeats images
        seen = {directory_key(split_dir), *(directory_key(split_dir / name) for name in folders)}
        for index, name in enumerate(folders):
            found = walk_files(split_dir / name, is_image_file, seen)
            if not found and class_names is None:
                raise VisionZooError(f"{split_dir / name}: class folder without images ({', '.join(IMG_EXTENSIONS)})")
            paths += [os.path.join(name, p) for p in found]
            labels += [index] * len(found)
        if not paths:
            raise VisionZooError(f"{split_dir}: no images in its class folders")
        return folders, paths, labels
    flat = images_under_top(split_dir)
    if not flat:
        raise VisionZooError(f"{split_dir}: empty (expected {split}/<class>/<images>)")
    if class_names is None:
        raise VisionZooError(f"{split_dir}: images without class folders (expected {split}/<class>/<images>)")
    label_file = find_label_file(root, split)
    if label_file is None:
        tried = ", ".join(p.format(split=split) for p in LABEL_FILES)
        raise VisionZooError(f"{split_dir}: {len(flat)} images but no class folders and no label file ({tried})")
    by_name = read_label_file(label_file, class_names)
    labels = [by_name.get(name, by_name.get(os.path.splitext(name)[0], -1)) for name in flat]
    missing = [name for name, label in zip(flat, labels, strict=True) if label < 0]
    if missing:
        raise VisionZooError(f"{label_file}: no label for {len(missing)} of the {len(flat)} images (e.g. {missing[0]})")
    return list(class_names), flat, labels


def _few(names: list[str], limit: int = 10) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


class ImageFolderDataset(Dataset):
    """Items `(uint8 tensor [3, img_size, img_size], label)` by key (index, epoch); None for a corrupt image.

    A training transform draws its randomness from (seed, epoch, index). A file that cannot be decoded, or that
    has more than `max_pixels` pixels, is logged once (per process) and counted in `skipped_files`, and the item
    is None (the collate drops it); with `strict` a VisionZooError naming it is raised. A set of which no image
    can be read at all is refused at once (`PROBE_IMAGES`). Paths are kept in one numpy bytes array, not a list
    of str, so forked loader workers do not copy them.
    """

    PROBE_IMAGES = 16  # spread over the set; one readable is enough

    def __init__(
        self,
        root: Path,
        split: str,
        transform: TrainTransform | EvalTransform,
        class_names: list[str] | None = None,
        seed: int = 0,
        strict: bool = False,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ) -> None:
        self.root, self.split, self.transform = Path(root), split, transform
        self.class_names, paths, labels = scan_split(self.root, split, class_names)
        self._paths = np.array([os.fsencode(p) for p in paths])
        self.labels = np.asarray(labels, dtype=np.int64)
        self.seed, self.strict, self.max_pixels = seed, strict, max_pixels
        self.skipped_files: set[str] = set()
        self._require_a_readable_image()

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, index: int) -> Path:
        return self.root / self.split / os.fsdecode(self._paths[index])

    def _load(self, index: int, epoch: int) -> torch.Tensor | str:
        """The transformed image, or why it cannot be read."""
        try:
            with open_image(self.path(index), self.max_pixels) as image:
                if isinstance(self.transform, TrainTransform):
                    return self.transform(image, sample_rng(self.seed, epoch, index))
                return self.transform(image)
        except Exception as err:  # any decoder failure; a loader worker must not die of one bad file
            return f"{type(err).__name__}: {err}"

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, int] | None:
        index, epoch = key
        loaded = self._load(index, epoch)
        if isinstance(loaded, str):
            path = self.path(index)
            if self.strict:
                raise VisionZooError(f"{path}: unreadable image ({loaded}); --strict-data is on")
            if str(path) not in self.skipped_files:
                self.skipped_files.add(str(path))
                logger.warning("skipping unreadable image %s (%s)", path, loaded)
            return None
        return loaded, int(self.labels[index])

    def _require_a_readable_image(self) -> None:
        """Stop before training when no image can be read at all (not images, no permission), rather than
        after an epoch of empty batches."""
        count = min(self.PROBE_IMAGES, len(self))
        tried = sorted({round(i * (len(self) - 1) / max(1, count - 1)) for i in range(count)})
        reasons = []
        for index in tried:
            loaded = self._load(index, 0)
            if not isinstance(loaded, str):
                return
            reasons.append(loaded)
        raise VisionZooError(
            f"{self.root / self.split}: no image could be read, all {len(tried)} tried failed "
            f"(the first: {self.path(tried[0])}: {reasons[0]})"
        )


def build_imagefolder_datasets(
    root: Path,
    train_transform: TrainTransform,
    eval_transform: EvalTransform,
    seed: int = 0,
    strict: bool = False,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> tuple[ImageFolderDataset, ImageFolderDataset]:
    """(train, val) of `root`/train and `root`/val (or validation); val must have train's class folders."""
    if not root.is_dir():
        raise VisionZooError(f"--data {root}: no such directory (expected train/ and val/ inside)")
    options = {"seed": seed, "strict": strict, "max_pixels": max_pixels}
    train = ImageFolderDataset(root, "train", train_transform, **options)
    val_split = next((s for s in VAL_SPLITS if (root / s).is_dir()), VAL_SPLITS[0])
    val = ImageFolderDataset(root, val_split, eval_transform, train.class_names, **options)
    return train, val
